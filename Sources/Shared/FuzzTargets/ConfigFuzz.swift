// cluster.conf: the coordinator's and workers' settings file.
import Config
import Foundation

public enum ConfigFuzz: FuzzTarget {
    public static func seeds() throws -> [(String, [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        if let repo = FileManager.default.contents(atPath: "cluster.conf") { seeds.append(("cluster.conf", [UInt8](repo))) }
        seeds.append(("small", Array("""
            model = m.gguf
            threads = 2
            workers = local 2
            endpoint = tcp://127.0.0.1:5570
            layers = 3-5,7
            v_lr = 0.5
            cov_sentences = 100
            """.utf8)))
        return seeds
    }

    public static func test(_ input: [UInt8]) {
        _ = try? ClusterConfig.parse(String(decoding: input, as: UTF8.self), baseDirectory: "/tmp")
    }
}
