import FuzzSupport
import FuzzTargets

@main enum Main {
    static func main() { Fuzzer.run(CurveFuzz.self) }
}
