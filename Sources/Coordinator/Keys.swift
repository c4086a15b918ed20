// `alphaedit keys`: a CURVE key pair for a coordinator or a worker (README, "Running on a cluster").
import ArgumentParser
import Foundation
import Shared

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a CURVE key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub (its public key line).",
        discussion: """
            The coordinator's cluster.conf names its own .key (curve_key) and a file of the workers' .pub lines \
            (authorized_keys); each worker gets --key NAME.key --coordinator-key coordinator.pub. Existing files are \
            never overwritten.
            """)

    @Option(help: "Folder for the two files (created when missing).") var out: String
    @Option(help: "Name of the pair, e.g. coordinator or worker-node3.") var name: String

    func run() throws {
        let (secret, pub, pair) = try Curve.writeKeyPair(directory: out, name: name)
        print("secret key: \(secret) (mode 0600: keep it on this machine)")
        print("public key: \(pub)")
        print(pair.publicKey.z85)
    }
}
