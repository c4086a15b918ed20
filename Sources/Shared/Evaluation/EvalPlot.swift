// A small SVG chart of eval reports: efficacy, generalization, specificity, fluency and general
// capability (mean F1, wikitext2 perplexity) against the number of edits, one line per report (e.g.
// AlphaEdit and MEMIT), up to six panels side by side (a panel no report has values for is left out).
// A point at k edits scores the k records edited so far, so specificity and fluency are drawn as the
// change from the unedited model on those same records (0 at 0 edits): absolute values of different
// record sets would make steps that are not the edits' doing.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Foundation

public enum EvalPlot {
    /// One point and the unedited model's summary on the same records.
    public struct Point { public var point: EvalPoint; public var pre: EvalSummary? }
    struct Panel: Sendable { let title: String; let value: @Sendable (Point) -> Double? }

    static func change(_ p: Point, _ m: EvalMetric) -> Double? {
        guard let now = p.point.summary[m], let before = p.pre?[m] else { return nil }
        return now - before
    }

    static let panels: [Panel] = [
        Panel(title: "efficacy") { $0.point.summary[.efficacy] },
        Panel(title: "generalization") { $0.point.summary[.generalization] },
        Panel(title: "specificity − unedited (same records)") { change($0, .specificity) },
        Panel(title: "fluency − unedited (×100 bits)") { change($0, .fluency) },
        Panel(title: "general: mean F1") { $0.point.general?.meanF1 },
        Panel(title: "general: wikitext2 perplexity") { $0.point.general?.perplexity },
    ]

    /// The report's curve with the unedited summaries of the same records (from its pre-edit shard).
    public static func points(_ r: EvalReport) -> [Point] {
        r.curve.map { p in
            Point(point: p, pre: r.preShard.map { EvalShard(records: Array($0.records.prefix(p.summary.records))).summary() })
        }
    }
    /// One series per run: reports of the same run (label and model) on the same records file from the
    /// same first record, evaluated at different sizes (e.g. a sequential campaign's state after 500
    /// and after 1,000 edits, each scored on the records edited so far), are joined into one curve.
    /// At an edit count two reports share, the point of the report with the fewest records that still
    /// covers it wins (its records are the ones edited so far). Other reports keep a series each,
    /// told apart by their records when the reports cover more than one record set.
    /// "name [first" of a report's records ("dev.jsonl [0, 500)"): a campaign's reports after 500 and after
    /// 1,000 edits share it.
    static func start(_ records: String) -> Substring { records.split(separator: ",").first ?? Substring(records) }

    /// Why the curves of `reports` (read from `paths`) do not compare: they were measured on different models
    /// or record sets (another file, or another first record). nil when they all share both.
    public static func mixedInputs(_ reports: [EvalReport], paths: [String]) -> String? {
        var problems: [String] = []
        for (what, key) in [("models", { (r: EvalReport) in r.model ?? "an unrecorded model" }),
                            ("record sets", { (r: EvalReport) in String(start(r.records)) + " …)" })] {
            var order: [String] = [], files: [String: [String]] = [:]
            for (r, p) in zip(reports, paths) {
                let k = key(r)
                if files[k] == nil { order.append(k) }
                files[k, default: []].append((p as NSString).lastPathComponent == "report.json" ? p : (p as NSString).lastPathComponent)
            }
            if order.count > 1 {
                problems.append("different \(what): " + order.map { "\($0) (\(files[$0]!.joined(separator: ", ")))" }.joined(separator: "; "))
            }
        }
        return problems.isEmpty ? nil : "these reports are not measured on the same inputs, so their curves do not compare: "
            + problems.joined(separator: "; and ")
    }

    public static func series(_ reports: [EvalReport]) -> [(label: String, points: [Point])] {
        var keys: [String] = [], groups: [String: [EvalReport]] = [:]
        for r in reports {
            let key = "\(r.label)\u{1}\(r.model ?? "")\u{1}\(start(r.records))"
            if groups[key] == nil { keys.append(key) }
            groups[key, default: []].append(r)
        }
        let runs = keys.compactMap { groups[$0]?.sorted { $0.recordCount < $1.recordCount } }
        let labels = runs.map { $0[0].label }
        return runs.map { rs in
            var byEdits: [Int: Point] = [:]
            for r in rs.reversed() { for p in points(r) { byEdits[p.point.edits] = p } }   // the smallest report last: it wins
            let largest = rs[rs.count - 1]
            let label = labels.filter { $0 == largest.label }.count > 1 ? "\(largest.label), \(largest.records)" : largest.label
            return (label, byEdits.keys.sorted().compactMap { byEdits[$0] })
        }
    }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

    /// SVG of `series`: (label, points).
    public static func svg(_ series: [(label: String, points: [Point])]) -> String {
        let panels = Self.panels.filter { panel in series.contains { $0.points.contains { panel.value($0)?.isFinite == true } } }
        let pw = 270.0, ph = 200.0, left = 45.0, top = 30.0, gap = 30.0
        let width = left + Double(panels.count) * (pw + gap), height = top + ph + 60 + 16 * Double(series.count)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        let maxEdits = Double(series.flatMap { $0.points.map(\.point.edits) }.max() ?? 1)
        for (pi, panel) in panels.enumerated() {
            let x0 = left + Double(pi) * (pw + gap)
            let vals = series.flatMap { $0.points.compactMap(panel.value) }.filter(\.isFinite)
            var lo = vals.min() ?? 0, hi = vals.max() ?? 1
            if hi - lo < 1e-9 { lo -= 1; hi += 1 }
            let pad = (hi - lo) * 0.1
            lo -= pad; hi += pad
            func px(_ e: Int) -> Double { x0 + Double(e) / max(maxEdits, 1) * pw }
            func py(_ v: Double) -> Double { top + (hi - v) / (hi - lo) * ph }
            s += "<rect x=\"\(x0)\" y=\"\(top)\" width=\"\(pw)\" height=\"\(ph)\" fill=\"none\" stroke=\"#888\"/>\n"
            s += "<text x=\"\(x0 + pw / 2)\" y=\"\(top - 10)\" text-anchor=\"middle\" font-size=\"13\">\(panel.title)</text>\n"
            for k in 0...4 {
                let v = lo + (hi - lo) * Double(k) / 4
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", x0 - 4, py(v) + 4, v)
                s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", x0, x0 + pw, py(v), py(v))
            }
            for e in Set(series.flatMap { $0.points.map(\.point.edits) }).sorted() {
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", px(e), top + ph + 14, e)
            }
            s += "<text x=\"\(x0 + pw / 2)\" y=\"\(top + ph + 30)\" text-anchor=\"middle\">edits</text>\n"
            for (si, ser) in series.enumerated() {
                let c = colors[si % colors.count]
                let pts = ser.points.compactMap { p in panel.value(p).flatMap { $0.isFinite ? (px(p.point.edits), py($0)) : nil } }
                guard !pts.isEmpty else { continue }
                s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\" points=\""
                    + pts.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ") + "\"/>\n"
                for p in pts { s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>\n", p.0, p.1, c) }
            }
        }
        for (si, ser) in series.enumerated() {
            let x = left, y = top + ph + 55 + Double(si) * 16  // one legend line per report
            s += "<rect x=\"\(x)\" y=\"\(y - 9)\" width=\"12\" height=\"12\" fill=\"\(colors[si % colors.count])\"/>\n"
            s += "<text x=\"\(x + 16)\" y=\"\(y + 1)\">\(escape(ser.label))</text>\n"
        }
        return s + "</svg>\n"
    }

    static func escape(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
