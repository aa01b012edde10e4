import Foundation
import RelayProtocol
import Testing

/// RFC 8259 conformance in the style of JSONTestSuite: `y_` texts must parse (to the given value),
/// `n_` texts must be refused with a `JSONParseError`, never a crash or a repaired value.
@Suite struct JSONConformanceTests {
    static let accepted: [(String, JSON)] = [
        ("y_array_empty", .array([])), ("y_object_empty", .object(JSONObject())),
        ("y_number_0", .int(0)), ("y_number_minus_0", .int(0)), ("y_number_int64_max", .int(Int64.max)),
        ("y_number_int64_min", .int(Int64.min)), ("y_number_2_pow_64", .double(18446744073709551616)),
        ("y_number_minus_2_pow_70", .double(-1180591620717411303424)), ("y_number_real_exp", .double(1e300)),
        ("y_number_tiny", .double(1e-300)), ("y_number_underflow", .double(0)), ("y_number_frac", .double(-0.5)),
        ("y_string_escapes", .string("\"\\/\u{08}\u{0C}\n\r\t")), ("y_string_pair", .string("😀")),
        ("y_string_lone_high", .string("a\u{FFFD}b")), ("y_string_lone_low", .string("\u{FFFD}")),
        ("y_string_high_then_escape", .string("\u{FFFD}A")), ("y_string_utf8", .string("é€😀")),
        ("y_string_nul_escape", .string("\u{0}")), ("y_object_duplicate_last_wins", ["a": 2, "b": 3]),
        ("y_whitespace", [1]), ("y_literals", [true, false, nil]),
        ("y_number_2_pow_63", .double(9223372036854775808)), ("y_number_minus_2_pow_64", .double(-18446744073709551616)),
        ("y_number_1e20", .double(1e20)), ("y_number_double_max", .double(.greatestFiniteMagnitude)),
        ("y_number_min_subnormal", .double(.leastNonzeroMagnitude)), ("y_number_minus_0_frac", .double(-0.0)),
        ("y_number_huge_negative_exp", .double(0)), ("y_number_zero_huge_exp", .double(0)),
        ("y_string_max_scalar_pair", .string("\u{10FFFF}")), ("y_string_two_lone_highs", .string("\u{FFFD}\u{FFFD}")),
        ("y_string_low_then_high", .string("\u{FFFD}\u{FFFD}")), ("y_string_bom_inside", .string("\u{FEFF}")),
        ("y_string_escaped_bom", .string("\u{FEFF}")), ("y_object_duplicate_escaped_key", ["a": 2]),
    ]
    static let acceptedText: [String: String] = [
        "y_array_empty": "[]", "y_object_empty": "{}", "y_number_0": "0", "y_number_minus_0": "-0",
        "y_number_int64_max": "9223372036854775807", "y_number_int64_min": "-9223372036854775808",
        "y_number_2_pow_64": "18446744073709551616", "y_number_minus_2_pow_70": "-1180591620717411303424",
        "y_number_real_exp": "1E+300", "y_number_tiny": "1e-300", "y_number_underflow": "1e-400",
        "y_number_frac": "-0.5", "y_string_escapes": #""\"\\\/\b\f\n\r\t""#, "y_string_pair": #""\ud83d\ude00""#,
        "y_string_lone_high": #""a\ud800b""#, "y_string_lone_low": #""\udc00""#,
        "y_string_high_then_escape": #""\ud800\u0041""#, "y_string_utf8": "\"é€😀\"",
        "y_string_nul_escape": #""\u0000""#, "y_object_duplicate_last_wins": #"{"a":1,"b":3,"a":2}"#,
        "y_whitespace": " \t\r\n[ 1 ]\n", "y_literals": "[true,false,null]",
        "y_number_2_pow_63": "9223372036854775808", "y_number_minus_2_pow_64": "-18446744073709551616",
        "y_number_1e20": "100000000000000000000", "y_number_double_max": "1.7976931348623157e308",
        "y_number_min_subnormal": "4.9e-324", "y_number_minus_0_frac": "-0.0",
        "y_number_huge_negative_exp": "1e-99999999999999999999", "y_number_zero_huge_exp": "0e99999999999999999999",
        "y_string_max_scalar_pair": #""\udbff\udfff""#, "y_string_two_lone_highs": #""\ud800\ud800""#,
        "y_string_low_then_high": #""\udc00\ud800""#, "y_string_bom_inside": "\"\u{FEFF}\"",
        "y_string_escaped_bom": #""\ufeff""#, "y_object_duplicate_escaped_key": #"{"a":1,"\u0061":2}"#,
    ]

    @Test(arguments: accepted.map(\.0))
    func accepts(_ name: String) throws {
        let text = try #require(Self.acceptedText[name])
        let expected = try #require(Self.accepted.first { $0.0 == name }?.1)
        #expect(try JSON.parse(text) == expected, "\(name)")
    }

    static let refused: [String: [UInt8]] = [
        "n_number_int64_max_plus_1_inexact": Array("9223372036854775809".utf8),
        "n_number_2_pow_64_plus_1": Array("18446744073709551617".utf8),
        "n_number_huge_int": Array(String(repeating: "9", count: 400).utf8),
        "n_number_overflow": Array("1e400".utf8), "n_number_minus_overflow": Array("-1e400".utf8),
        "n_number_uint64_max": Array("18446744073709551615".utf8), "n_number_int64_min_minus_1": Array("-9223372036854775809".utf8),
        "n_number_30_digits": Array("123456789012345678901234567890".utf8),
        "n_number_huge_exp": Array("1e99999999999999999999".utf8), "n_number_just_over_double_max": Array("1.7976931348623159e308".utf8),
        "n_number_minus_alone": Array("-".utf8), "n_number_minus_leading_zero": Array("-01".utf8),
        "n_number_dot_first": Array(".5".utf8), "n_number_exp_two_signs": Array("1e+-2".utf8),
        "n_number_dot_exp": Array("2.e3".utf8), "n_number_minus_space": Array("- 1".utf8),
        "n_number_leading_zero": Array("012".utf8), "n_number_plus": Array("+1".utf8),
        "n_number_dot": Array("1.".utf8), "n_number_exp_only": Array("1e".utf8), "n_number_nan": Array("NaN".utf8),
        "n_number_infinity": Array("Infinity".utf8), "n_number_hex": Array("0x1".utf8),
        "n_string_invalid_utf8": [0x22, 0xFF, 0x22], "n_string_overlong": [0x22, 0xC0, 0xAF, 0x22],
        "n_string_overlong_3_bytes": [0x22, 0xE0, 0x80, 0xAF, 0x22], "n_string_overlong_4_bytes": [0x22, 0xF0, 0x80, 0x80, 0xAF, 0x22],
        "n_string_overlong_nul": [0x22, 0xC0, 0x80, 0x22], "n_string_beyond_10ffff": [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],
        "n_string_lone_continuation": [0x22, 0x80, 0x22],
        "n_string_truncated_utf8": [0x22, 0xE2, 0x82, 0x22], "n_string_encoded_surrogate": [0x22, 0xED, 0xA0, 0x80, 0x22],
        "n_string_invalid_utf8_after_escape": [0x22, 0x5C, 0x6E, 0x80, 0x22],
        "n_string_raw_control": Array("\"a\u{01}\"".utf8), "n_string_bad_escape": Array(#""\x""#.utf8),
        "n_string_short_unicode": Array(#""\u12""#.utf8), "n_string_unterminated": Array(#""abc"#.utf8),
        "n_structure_utf8_outside_string": [0x5B, 0xC3, 0xA9, 0x5D], "n_structure_bom": [0xEF, 0xBB, 0xBF, 0x31],
        "n_structure_bom_object": [0xEF, 0xBB, 0xBF, 0x7B, 0x7D], "n_structure_utf16_bom": [0xFE, 0xFF, 0x00, 0x31],
        "n_object_trailing_comma": Array(#"{"a":1,}"#.utf8), "n_object_unquoted_key": Array("{a:1}".utf8),
        "n_array_trailing_comma": Array("[1,]".utf8), "n_single_quote": Array("['a']".utf8),
        "n_extra_data": Array("[] []".utf8), "n_empty": [], "n_comment": Array("[1]//x".utf8),
        "n_structure_depth_513": Array((String(repeating: "[", count: 513) + String(repeating: "]", count: 513)).utf8),
        "n_structure_depth_100k": Array(String(repeating: "{\"a\":", count: 100_000).utf8),
        "n_structure_object_depth_513": Array((String(repeating: "{\"a\":", count: 512) + "{}" + String(repeating: "}", count: 512)).utf8),
    ]

    @Test(arguments: refused.keys.sorted())
    func refuses(_ name: String) throws {
        let bytes = try #require(Self.refused[name])
        #expect(throws: JSONParseError.self, "\(name)") { try JSON.parse(bytes) }
    }

    @Test func depthCapIsNamedAndExactlyAt512() throws {
        let ok = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(throws: Never.self) { try JSON.parse(ok) }
        do {
            _ = try JSON.parse(String(repeating: "[", count: 513) + String(repeating: "]", count: 513))
            Issue.record("expected an error")
        } catch {
            #expect(error.message == "Nesting too deep")
        }
    }

    @Test func objectDepthCapIsAlso512() throws {
        func nested(_ levels: Int) -> String {
            String(repeating: #"{"a":"#, count: levels - 1) + "{}" + String(repeating: "}", count: levels - 1)
        }
        #expect(throws: Never.self) { try JSON.parse(nested(512)) }
        let error = #expect(throws: JSONParseError.self) { try JSON.parse(nested(513)) }
        #expect(error?.message == "Nesting too deep" && error?.offset == 512 * 5)
    }

    @Test func negativeZeroKeepsItsKind() throws {
        // `-0` is the integer 0 (as in Python); `-0.0` and an underflow below zero are a negative double.
        #expect(try JSON.parse("-0") == .int(0))
        for text in ["-0.0", "-0e0", "-1e-400"] {
            let d = try #require(try JSON.parse(text).doubleValue, "\(text)")
            #expect(d == 0 && d.sign == .minus, "\(text)")
        }
    }

    @Test func errorsNameTheProblem() {
        func message(_ bytes: [UInt8]) -> String? {
            do { _ = try JSON.parse(bytes); return nil } catch { return error.message }
        }
        #expect(message([0x22, 0xFF, 0x22]) == "Invalid UTF-8 in string")
        #expect(message(Array("18446744073709551617".utf8)) == "Integer out of range (not exactly representable)")
        #expect(message(Array("1e400".utf8)) == "Number out of range")
    }

    @Test func bigIntegersNeverLoseDigits() throws {
        // Every accepted integer re-encodes to a value equal to the text it came from.
        // Around 2^63, 2^64 and -2^63, and far beyond: each is an exact value or an error, never rounded.
        let edges = ["9223372036854775806", "9223372036854775807", "9223372036854775808", "9223372036854775809",
                     "18446744073709551614", "18446744073709551615", "18446744073709551616", "18446744073709551617",
                     "-9223372036854775807", "-9223372036854775808", "-9223372036854775809", "-18446744073709551617",
                     "1" + String(repeating: "0", count: 300), String(repeating: "7", count: 309)]
        for text in edges {
            if let i = Int64(text) {
                #expect(try JSON.parse(text) == .int(i))
                continue
            }
            let value = try? JSON.parse(text)
            if case .double(let d)? = value {
                #expect(String(format: "%.0f", d) == text)
            } else {
                #expect(value == nil, "\(text) parsed as \(String(describing: value))")
            }
        }
        // Integer-valued doubles out of the exact range are not ids.
        #expect(JSON.double(1e300).idKey == nil && JSON.double(1e300).intValue == nil)
        #expect(JSON.double(.nan).idKey == nil && JSON.double(-0.0).idKey == "0")
    }

    @Test func objectIndexKeepsOrderAndLastWins() throws {
        var o = JSONObject()
        for i in 0..<20 { o["k\(i)"] = .int(Int64(i)) }
        o["k3"] = "three"
        o["k0"] = nil
        o["new"] = true
        #expect(o.keys == (1..<20).map { "k\($0)" } + ["new"])
        #expect(o["k3"] == "three" && o["k19"] == .int(19) && o["k0"] == nil && o.has("new") && !o.has("k0"))
        // Shrinking below the threshold and growing again stays consistent.
        for i in 1..<18 { o["k\(i)"] = nil }
        #expect(o.keys == ["k18", "k19", "new"] && o["k19"] == .int(19))
        for i in 0..<10 { o["z\(i)"] = .int(Int64(i)) }
        #expect(o["z9"] == .int(9) && o["k18"] == .int(18) && o.count == 13)
        var small = JSONObject()
        small["b"] = 1
        small["a"] = 2
        #expect(o != small && small == JSONObject(["b": 1, "a": 2]))
    }

    @Test func hundredThousandKeysParseInLinearTime() throws {
        var text = "{"
        for i in 0..<100_000 { text += (i == 0 ? "" : ",") + "\"k\(i)\":\(i)" }
        text += ",\"k5\":\"last\"}"
        let clock = ContinuousClock()
        let start = clock.now
        let value = try JSON.parse(text)
        let elapsed = clock.now - start
        #expect(value.objectValue?.count == 100_000)
        #expect(value["k99999"] == .int(99_999) && value["k5"] == "last")
        // Quadratic lookup took minutes here; linear takes well under a second in a debug build. The
        // bound is 15× that, so a loaded CI machine cannot fail it and a quadratic parser still does.
        #expect(elapsed < .seconds(15), "100k keys took \(elapsed)")
    }
}
