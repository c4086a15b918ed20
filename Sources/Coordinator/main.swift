import Shared
print("alphaedit \(AlphaEditVersion.string)")
