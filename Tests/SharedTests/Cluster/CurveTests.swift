// CURVE over tcp (issue 12 §1): key files and their errors (file and line, before any socket), the
// plaintext-tcp refusal, and a real `alphaedit cov` coordinator on tcp with CURVE that refuses a worker
// with an unknown key, a plaintext worker and a worker pinning the wrong coordinator key (each exits
// with the reason; the coordinator logs it) while an authorised worker builds K0 equal to the
// in-process build.
import Foundation
import Shared
import XCTest

final class CurveTests: XCTestCase {
    func testZ85AndKeyFiles() throws {
        // RFC 32's test vector.
        XCTAssertEqual(CurveKey(z85: "HelloWorld" + String(repeating: "0", count: 30))?.bytes.prefix(8),
                       [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (secret, pub, pair) = try Curve.writeKeyPair(directory: dir + "/keys", name: "node-1")
        var st = stat()
        XCTAssertEqual(stat(secret, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        let loaded = try Curve.loadKeyPair(path: secret)
        XCTAssertEqual(loaded.publicKey, pair.publicKey)
        XCTAssertEqual(loaded.secretKey, pair.secretKey)
        XCTAssertEqual(try Curve.loadPublicKey(path: pub), pair.publicKey)
        XCTAssertEqual(try Curve.loadAuthorizedKeys(path: pub).label(of: pair.publicKey), "node-1")
        func message(_ f: () throws -> Any) -> String {
            do { _ = try f(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message { try Curve.writeKeyPair(directory: dir + "/keys", name: "node-1") }.contains("exists: refusing to overwrite"))

        chmod(secret, 0o644)
        XCTAssertEqual(message { try Curve.loadKeyPair(path: secret) },
                       "\(secret): permissions 0644 let others read this secret key: chmod 600 \(secret)")
        chmod(secret, 0o600)
        XCTAssertEqual(message { try Curve.loadKeyPair(path: dir + "/none.key") }, "cannot read key file \(dir)/none.key: No such file or directory")
        XCTAssertTrue(message { try Curve.loadPublicKey(path: secret) }.contains("this is a secret .key file"))
        // Each file given where the other kind goes is named as such (a .pub as --key was told to chmod 600).
        XCTAssertEqual(message { try Curve.loadKeyPair(path: pub) }, "\(pub):1: this is a public .pub file: give the secret .key file made beside it")
        XCTAssertTrue(message { try Curve.loadAuthorizedKeys(path: secret) }.contains("this is a secret .key file: authorized_keys lists"))

        let other = try CurveKeyPair.generate()
        func write(_ name: String, _ text: String, mode: Int = 0o600) -> String {
            let p = dir + "/" + name
            FileManager.default.createFile(atPath: p, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
            return p
        }
        let mismatched = write("mismatch.key", "public-key = \(other.publicKey)\nsecret-key = \(pair.secretKey)\n")
        XCTAssertEqual(message { try Curve.loadKeyPair(path: mismatched) }, "\(mismatched):1: public-key does not belong to the file's secret-key")
        let short = write("short.pub", "# a comment\n\(pair.publicKey.z85.dropLast(3)) node\n")
        XCTAssertEqual(message { try Curve.loadPublicKey(path: short) }, "\(short):2: a CURVE key is 40 Z85 characters, found 37")
        let auth = write("authorized_keys", "# workers\n\(pair.publicKey) node-1\n\n\(other.publicKey)\n" + String(repeating: "~", count: 40) + " bad\n")
        XCTAssertEqual(message { try Curve.loadAuthorizedKeys(path: auth) }, "\(auth):5: '~' is not a Z85 character")
        let overflow = write("overflow", "%%%%%" + String(repeating: "0", count: 35) + "\n")
        XCTAssertTrue(message { try Curve.loadAuthorizedKeys(path: overflow) }.hasPrefix("\(overflow):1: not a valid Z85 key"))
        let good = write("authorized_ok", "# workers\n\(pair.publicKey) node-1\n\(other.publicKey)\n")
        let keys = try Curve.loadAuthorizedKeys(path: good)
        XCTAssertEqual(keys.count, 2)
        XCTAssertEqual(keys.label(of: other.publicKey), "authorized_ok:3")

        // The config keys, and the worker's flags: both or neither.
        let cfg = try ClusterConfig.parse("curve_key = keys/node-1.key\nauthorized_keys = authorized_ok\ninsecure_tcp = true\n",
                                          baseDirectory: dir)
        XCTAssertEqual(cfg.curveKey, dir + "/keys/node-1.key")
        XCTAssertTrue(cfg.insecureTCP)
        guard case .curve(let p, let a) = try cfg.serverSecurity() else { return XCTFail("not CURVE") }
        XCTAssertEqual(p.publicKey, pair.publicKey)
        XCTAssertEqual(a.count, 2)
        XCTAssertThrowsError(try ClusterConfig.parse("insecure_tcp = yes")) {
            XCTAssertEqual("\($0)", #"config line 1: insecure_tcp = "yes" is invalid (expected true or false)"#)
        }
        var remote = try ClusterConfig.parse("curve_key = keys/node-1.key\nworkers = remote\n", baseDirectory: dir)
        XCTAssertEqual(message { try remote.serverSecurity() }, "\(SecurityError.noAuthorizedKeys)")
        remote.curveKey = short
        XCTAssertTrue(message { try remote.serverSecurity() }.hasPrefix(short), "a bad key file is named before anything else")
        XCTAssertEqual(message { try WorkerSecurity.client(key: nil, coordinatorKey: pub) }, "\(SecurityError.coordinatorKeyWithoutKey)")
        XCTAssertTrue(message { try WorkerSecurity.client(key: secret, coordinatorKey: nil) }.contains("pins the coordinator's public key"))
    }

    func testPlaintextTCPIsRefusedUnlessAllowed() throws {
        let port = Int.random(in: 20_000...60_000)
        XCTAssertThrowsError(try WorkerPool(endpoint: "tcp://127.0.0.1:\(port)", modelChecksum: "0123456789abcdef",
                                            logger: CapturedLog().logger)) { e in
            XCTAssertTrue("\(e)".hasPrefix("refusing to bind tcp://127.0.0.1:\(port) in plaintext"), "\(e)")
        }
        let log = CapturedLog()
        let pool = try WorkerPool(endpoint: "tcp://127.0.0.1:\(port)", modelChecksum: "0123456789abcdef", insecureTCP: true,
                                  logger: log.logger)
        pool.shutdown()
        XCTAssertTrue(log.contains("in plaintext (insecure_tcp = true)"), "\(log.all)")
    }

    /// Keys for a coordinator and workers in `dir/keys`; authorized_keys lists `authorised` only.
    static func keys(in dir: String, workers: [String], authorised: [String]) throws -> [String: CurveKeyPair] {
        var pairs: [String: CurveKeyPair] = [:]
        for n in ["coordinator"] + workers { pairs[n] = try Curve.writeKeyPair(directory: dir + "/keys", name: n).2 }
        let lines = authorised.map { "\(pairs[$0]!.publicKey) \($0)" }.joined(separator: "\n")
        try ("# workers this coordinator admits\n" + lines + "\n").write(toFile: dir + "/keys/authorized_keys", atomically: true, encoding: .utf8)
        return pairs
    }

    func testCurveCoordinatorAdmitsOnlyAuthorisedWorkers() throws {
        let coordinator = try ClusterTestSupport.executable("alphaedit")
        let worker = try ClusterTestSupport.executable("alphaedit-worker")
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 300)
        _ = try Self.keys(in: dir, workers: ["good", "stranger"], authorised: ["good"])
        let port = Int.random(in: 20_000...60_000)
        try """
            curve_key = keys/coordinator.key
            authorized_keys = keys/authorized_keys
            workers = remote
            endpoint = tcp://127.0.0.1:\(port)
            threads = 1
            """.write(toFile: dir + "/cluster.conf", atomically: true, encoding: .utf8)
        let c = try ClusterTestSupport.start(coordinator, ["cov", "--config", dir + "/cluster.conf", "--model", model, "--corpus", corpus,
                                                           "--sentences", "300", "--layers", "1-2", "--out", dir + "/cov",
                                                           "--shard-sentences", "100"], stderr: dir + "/coordinator.log")
        defer { if c.isRunning { kill(c.processIdentifier, SIGKILL) } }
        let endpoint = "tcp://127.0.0.1:\(port)"
        let k = dir + "/keys/"
        // Each refused worker exits with code 3 and the reason.
        for (name, args, expected) in [
            ("stranger", ["--key", k + "stranger.key", "--coordinator-key", k + "coordinator.pub"], "refused by the coordinator's authenticator (ZAP status 400)"),
            ("plaintext", [], "the coordinator requires CURVE"),
            ("wrong-pin", ["--key", k + "good.key", "--coordinator-key", k + "stranger.pub"], "does not hold the key --coordinator-key pins"),
        ] {
            let p = try ClusterTestSupport.start(worker, ["--connect", endpoint, "--model", model, "--name", name] + args,
                                                 stderr: dir + "/\(name).log")
            ClusterTestSupport.wait(p, seconds: 30, "worker \(name)")
            let said = ClusterTestSupport.read(dir + "/\(name).log")
            XCTAssertEqual(p.terminationStatus, 3, "\(name): \(said)")
            XCTAssertTrue(said.contains(expected), "\(name): \(said)")
        }
        XCTAssertTrue(c.isRunning, "the coordinator keeps serving")
        let w = try ClusterTestSupport.start(worker, ["--connect", endpoint, "--model", model, "--name", "good", "--log-level", "warning",
                                                      "--key", k + "good.key", "--coordinator-key", k + "coordinator.pub"])
        defer { if w.isRunning { kill(w.processIdentifier, SIGKILL) } }
        ClusterTestSupport.wait(c, seconds: 90, "alphaedit cov")
        let said = ClusterTestSupport.read(dir + "/coordinator.log")
        XCTAssertEqual(c.terminationStatus, 0, said)
        XCTAssertTrue(said.contains("is not in authorized_keys"), said)
        XCTAssertTrue(said.contains("the peers disagree on security") || said.contains("it closed the handshake (a plaintext peer"), said)
        XCTAssertTrue(said.contains("admitted good"), said)
        let stats = try KeyStatistics.read(from: dir + "/cov/statistics.bin")
        let rel = try ClusterTestSupport.relativeDifference(stats, try ClusterTestSupport.inProcessStatistics(model: model, corpus: corpus, range: 0..<300))
        print(String(format: "alphaedit cov over tcp+CURVE: max rel diff vs in-process %.2e", rel))
        XCTAssertLessThanOrEqual(rel, 1e-9)
        ClusterTestSupport.wait(w, seconds: 10, "worker after shutdown")
    }

    /// `workers = local N` with CURVE: the local workers get keys of their own at start.
    func testLocalWorkersOfACurveCoordinator() throws {
        let coordinator = try ClusterTestSupport.executable("alphaedit")
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 200)
        _ = try Self.keys(in: dir, workers: [], authorised: [])
        try "curve_key = keys/coordinator.key\nworkers = local 2\nendpoint = tcp://127.0.0.1:\(Int.random(in: 20_000...60_000))\nthreads = 2\n"
            .write(toFile: dir + "/cluster.conf", atomically: true, encoding: .utf8)
        let c = try ClusterTestSupport.start(coordinator, ["cov", "--config", dir + "/cluster.conf", "--model", model, "--corpus", corpus,
                                                           "--sentences", "200", "--layers", "1-2", "--out", dir + "/cov",
                                                           "--shard-sentences", "50"], stderr: dir + "/coordinator.log")
        ClusterTestSupport.wait(c, seconds: 90, "alphaedit cov")
        let said = ClusterTestSupport.read(dir + "/coordinator.log")
        XCTAssertEqual(c.terminationStatus, 0, said)
        XCTAssertTrue(said.contains("admitted local worker"), said)
        let rel = try ClusterTestSupport.relativeDifference(try KeyStatistics.read(from: dir + "/cov/statistics.bin"),
                                                            try ClusterTestSupport.inProcessStatistics(model: model, corpus: corpus, range: 0..<200))
        XCTAssertLessThanOrEqual(rel, 1e-9)
    }
}
