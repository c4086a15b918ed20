import Foundation
import XCTest

/// Locations of the repository, the shared data beside it and the default model.
enum RepoPaths {
    /// The repository: the nearest folder above this file that holds Package.swift. (The model and
    /// ../shared are outside the test bundle; the test target's own fixtures are resources.)
    static let repo: URL = {
        var u = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: u.appendingPathComponent("Package.swift").path), u.path != "/" {
            u = u.deletingLastPathComponent()
        }
        return u
    }()
    static let shared = repo.deletingLastPathComponent().appendingPathComponent("shared")
    static let model = repo.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    /// The default model's path; the test is skipped (with the reason) when set-up has not fetched it.
    static func requireModel() throws -> String {
        guard FileManager.default.fileExists(atPath: model) else {
            throw XCTSkip("default model not present at \(model): run scripts/setup.sh")
        }
        return model
    }

    /// A packaged model by its CLI name (`qwen2.5-0.5b`, `gemma3-270m`): its path, or a failure that
    /// says how to fetch it (the test command fetches all three; not a skip).
    static func requireModel(named name: String) throws -> String {
        let files = ["smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf", "qwen2.5-0.5b": "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
                     "gemma3-270m": "gemma-3-270m.Q4_K_M.gguf"]
        guard let f = files[name] else { throw XCTSkip("unknown model name \(name)") }
        let path = repo.appendingPathComponent("models/\(f)").path
        guard FileManager.default.fileExists(atPath: path) else {
            XCTFail("model \(name) not present at \(path): run scripts/fetch-model.sh \(name)")
            throw CocoaError(.fileNoSuchFile)
        }
        return path
    }

    static func sharedFile(_ rel: String) throws -> URL {
        let u = shared.appendingPathComponent(rel)
        guard FileManager.default.fileExists(atPath: u.path) else { throw XCTSkip("shared file \(u.path) not present") }
        return u
    }
}
