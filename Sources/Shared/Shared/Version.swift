public enum AlphaEditVersion {
    public static let string = "0.1.0"
}
