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

    static func sharedFile(_ rel: String) throws -> URL {
        let u = shared.appendingPathComponent(rel)
        guard FileManager.default.fileExists(atPath: u.path) else { throw XCTSkip("shared file \(u.path) not present") }
        return u
    }
}
