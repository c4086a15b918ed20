// Layer lists as written on command lines: ranges, lists, and every rejection's exact text.
import Shared
import XCTest

final class LayerListTests: XCTestCase {
    func testRangesAndListsParse() throws {
        XCTAssertEqual(try LayerList.parse("3-7"), [3, 4, 5, 6, 7])
        XCTAssertEqual(try LayerList.parse("3,5,7"), [3, 5, 7])
        XCTAssertEqual(try LayerList.parse("7, 3 ,5"), [3, 5, 7])
        XCTAssertEqual(try LayerList.parse("3-5,7"), [3, 4, 5, 7])
        XCTAssertEqual(try LayerList.parse("4"), [4])
        XCTAssertEqual(try LayerList.parse("0-29", modelLayers: 30).count, 30)
        for layers in [[3, 4, 5, 6, 7], [3, 5, 7], [3, 4, 5, 7], [1, 2], [0]] {
            XCTAssertEqual(try LayerList.parse(LayerList.format(layers)), layers)
        }
        XCTAssertEqual(LayerList.format([3, 4, 5, 6, 7]), "3-7")
        XCTAssertEqual(LayerList.format([7, 3, 5]), "3,5,7")
        XCTAssertEqual(LayerList.format([3, 4, 5, 7, 8]), "3-5,7,8")
    }

    func testBadInputIsRejectedWithItsReason() {
        let cases: [(String, Int?, String)] = [
            ("", nil, "layer list is empty (expected e.g. \"3-7\" or \"3,5,7\")"),
            ("3,x", nil, "layer list \"3,x\": \"x\" is not a layer number or a range like 3-7"),
            ("3,,4", nil, "layer list \"3,,4\": \"\" is not a layer number or a range like 3-7"),
            ("-3", nil, "layer list \"-3\": \"-3\" is not a layer number or a range like 3-7"),
            ("3-5-7", nil, "layer list \"3-5-7\": \"3-5-7\" is not a layer number or a range like 3-7"),
            ("3-", nil, "layer list \"3-\": \"3-\" is not a layer number or a range like 3-7"),
            ("7-3", nil, "layer list \"7-3\": range \"7-3\" runs backwards"),
            ("3-5,4", nil, "layer list \"3-5,4\": layer 4 appears twice"),
            ("3-30", 30, "layer list \"3-30\": layer 30 is outside 0...29"),
            ("0-999999999", nil, "layer list \"0-999999999\": layer 999999999 is outside 0...4095"),
        ]
        for (text, n, expected) in cases {
            XCTAssertThrowsError(try LayerList.parse(text, modelLayers: n), text) { error in
                XCTAssertEqual("\(error)", expected)
            }
        }
    }

    /// Edited layers are checked against the model before any work: distinct and in range, and the last
    /// one (v*'s) below the top block. Editing a 30-block model's block 29 failed only once v* began, after
    /// K₀, as "layer 29 is outside 0..<30".
    func testEditedLayersLeaveABlockAboveForVStar() {
        var hp = EditHyperparameters()
        for (layers, ok) in [([3, 4, 5, 6, 7], true), ([0, 28], true), ([29], false), ([27, 28, 29], false), ([30], false), ([], false), ([3, 3], false)] {
            hp.layers = layers
            XCTAssertEqual(hp.layersProblem(modelLayers: 30) == nil, ok, "\(layers)")
        }
        hp.layers = [28, 29]
        XCTAssertEqual(hp.layersProblem(modelLayers: 30), "the last edited layer, 29, must be below the model's top block (29): v* optimises its output "
                       + "through the blocks above it; edit layers within 0...28")
        hp.layers = [12, 40]
        XCTAssertEqual(hp.layersProblem(modelLayers: 30), "edited layers [12, 40] must be distinct, non-empty and within 0...28 (the model has 30 blocks; v* optimises the last edited layer's output through the blocks above it)")
    }
}
