// CURVE key files (`.key`, `.pub`, authorized_keys: hand-edited, copied between machines) and the
// ZAP handler's reading of an authentication request. The input is read as each key file's text, and
// split at 0x00 bytes into the frames of a ZAP request.
import Wire
import Foundation

public enum CurveFuzz: FuzzTarget {
    public static func seeds() throws -> [(String, [UInt8])] {
        let a = try CurveKeyPair.generate(), b = try CurveKeyPair.generate()
        let keyFile = "# alphaedit CURVE key pair \"w\"\npublic-key = \(a.publicKey)\nsecret-key = \(a.secretKey)\n"
        let zap: [[UInt8]] = [Array("1.0".utf8), Array("7".utf8), Array("alphaedit".utf8), Array("10.0.0.2".utf8), [],
                              Array("CURVE".utf8), b.publicKey.bytes]
        return [("key", Array(keyFile.utf8)), ("pub", Array("\(a.publicKey) w\n".utf8)),
                ("authorized", Array("# workers\n\(a.publicKey) w\n\n\(b.publicKey)\n".utf8)),
                ("zap", Array(zap.map { $0 }.joined(separator: [0])))]
    }

    public static func test(_ input: [UInt8]) {
        let text = String(decoding: input, as: UTF8.self)
        _ = try? Curve.parseKeyPair(text, path: "fuzz.key")
        _ = try? Curve.parsePublicKey(text, path: "fuzz.pub")
        let authorized = (try? Curve.parseAuthorizedKeys(text, path: "authorized_keys")) ?? AuthorizedKeys()
        let frames = input.split(separator: 0, maxSplits: 8, omittingEmptySubsequences: false).map(Array.init)
        let (reply, _) = ZAPHandler.answer(frames, authorized)
        precondition(reply.count == 6, "a ZAP reply has 6 frames")
    }
}
