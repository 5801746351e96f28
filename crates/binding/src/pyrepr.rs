//! JSON values written the way Python's `str()` writes the equivalent objects: upstream passes
//! `str(vif_details)` to the binding scripts, and scripts parse that text (the `ovs` script
//! greps it for `'ovs_hybrid_plug': True`).
//!
//! Object keys come out in serde_json's order (sorted), not Neutron's; scripts match on
//! `'key': value` pieces, which do not depend on the order.

use serde_json::{Number, Value};

/// `str(value)` of the Python object that `json.loads` makes of `value`.
pub fn python_str(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, key);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &Number) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&float_repr(f));
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, positional for exponents in
/// -4..16, scientific (`1e+16`, `1e-05`) outside, always with a `.0` when integral.
fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    // `{:e}` gives the shortest round-trip digits as `d.ddde[-]x`.
    let sci = format!("{f:e}");
    let Some((mantissa, exponent)) = sci.split_once('e') else {
        return sci;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..16).contains(&exponent) {
        let text = f.to_string();
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// Python's `repr(str)`: single quotes unless the text has a single quote and no double one;
/// backslash, the quote, and unprintable characters escaped.
fn write_str(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                let code = u32::from(c);
                if code < 0x100 {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code < 0x10000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn neutron_vif_details() {
        let details = json!({
            "port_filter": true,
            "ovs_hybrid_plug": false,
            "datapath_type": "netdev",
            "bridge_name": "br-int",
            "connectivity": "l2",
            "bound_drivers": {"0": "openvswitch"},
        });
        assert_eq!(
            python_str(&details),
            "{'bound_drivers': {'0': 'openvswitch'}, 'bridge_name': 'br-int', \
             'connectivity': 'l2', 'datapath_type': 'netdev', 'ovs_hybrid_plug': False, \
             'port_filter': True}"
        );
        assert_eq!(python_str(&json!({})), "{}");
    }

    /// Expected texts are what CPython 3.11 prints for the same values.
    #[test]
    fn scalars_like_python() {
        for (value, python) in [
            (json!(null), "None"),
            (json!(12), "12"),
            (json!(-3), "-3"),
            (json!(18446744073709551615u64), "18446744073709551615"),
            (json!(1.5), "1.5"),
            (json!(1.0), "1.0"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(1e16), "1e+16"),
            (json!(123456789012345.0), "123456789012345.0"),
            (json!(2.5e-7), "2.5e-07"),
            (json!([1, "a", [true]]), "[1, 'a', [True]]"),
            (json!("it's"), "\"it's\""),
            (json!("say \"hi\" it's"), "'say \"hi\" it\\'s'"),
            (
                json!("a\\b\n\t\u{1}é\u{2028}"),
                "'a\\\\b\\n\\t\\x01é\\u2028'",
            ),
        ] {
            assert_eq!(python_str(&value), python, "{value}");
        }
    }
}
