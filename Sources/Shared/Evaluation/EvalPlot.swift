// A small SVG chart of eval reports: efficacy, specificity, fluency and general capability (mean F1)
// against the number of edits, one line per report (e.g. AlphaEdit and MEMIT), four panels side by side.
import Foundation

public enum EvalPlot {
    struct Panel { let title: String; let value: (EvalPoint) -> Double? }

    static let panels: [Panel] = [
        Panel(title: "efficacy") { $0.summary[.efficacy] },
        Panel(title: "specificity") { $0.summary[.specificity] },
        Panel(title: "fluency (×100 bits)") { $0.summary[.fluency] },
        Panel(title: "general: mean F1") { $0.general?.meanF1 },
    ]
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

    /// SVG of `series`: (label, points).
    public static func svg(_ series: [(label: String, points: [EvalPoint])]) -> String {
        let pw = 260.0, ph = 200.0, left = 45.0, top = 30.0, gap = 30.0
        let width = left + Double(panels.count) * (pw + gap), height = top + ph + 70
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        let maxEdits = Double(series.flatMap { $0.points.map(\.edits) }.max() ?? 1)
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
            for e in Set(series.flatMap { $0.points.map(\.edits) }).sorted() {
                s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", px(e), top + ph + 14, e)
            }
            s += "<text x=\"\(x0 + pw / 2)\" y=\"\(top + ph + 30)\" text-anchor=\"middle\">edits</text>\n"
            for (si, ser) in series.enumerated() {
                let c = colors[si % colors.count]
                let pts = ser.points.compactMap { p in panel.value(p).flatMap { $0.isFinite ? (px(p.edits), py($0)) : nil } }
                guard !pts.isEmpty else { continue }
                s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\" points=\""
                    + pts.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ") + "\"/>\n"
                for p in pts { s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>\n", p.0, p.1, c) }
            }
        }
        for (si, ser) in series.enumerated() {
            let x = left + Double(si) * 220, y = top + ph + 55
            s += "<rect x=\"\(x)\" y=\"\(y - 9)\" width=\"12\" height=\"12\" fill=\"\(colors[si % colors.count])\"/>\n"
            s += "<text x=\"\(x + 16)\" y=\"\(y + 1)\">\(escape(ser.label))</text>\n"
        }
        return s + "</svg>\n"
    }

    static func escape(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
