// The umbrella of the layered targets (Package.swift lists them bottom to top): the executables and
// the tests import `Shared` and see every layer's public API.
@_exported import Bench
@_exported import Campaign
@_exported import Cluster
@_exported import Config
@_exported import Corpus
@_exported import Editing
@_exported import Evaluation
@_exported import FuzzTargets
@_exported import GGUF
@_exported import Kernels
@_exported import Model
@_exported import Store
@_exported import Support
@_exported import Tokenization
@_exported import Wire
