import Shared
print("alphaedit-worker \(AlphaEditVersion.string)")
