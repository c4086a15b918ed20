import Shared
BLASRuntime.ensureOptimizedKernels()
print("alphaedit-worker \(AlphaEditVersion.string)")
