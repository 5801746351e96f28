//! The INI dialect of oslo.config, so that an upstream `kuryr.conf` reads exactly as it did:
//!
//! - `#` and `;` start a comment only at the start of a line (a `#` inside a value is kept:
//!   passwords may contain it);
//! - `key = value` or `key: value`, split at the first `=` or `:`; key and value are trimmed;
//! - a value wrapped in matching single or double quotes loses the quotes; no escapes;
//! - an indented line continues the previous value (joined with a newline);
//! - a key given twice keeps the last value.

use std::collections::BTreeMap;

/// One `key = value` with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniValue {
    pub value: String,
    pub line: usize,
}

/// Sections (names as written, `DEFAULT` included) to their options.
pub type IniSections = BTreeMap<String, BTreeMap<String, IniValue>>;

/// A line that is not INI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct IniError {
    pub line: usize,
    pub reason: String,
}

pub fn parse(text: &str) -> Result<IniSections, IniError> {
    let mut sections = IniSections::new();
    let mut section: Option<String> = None;
    // (section, key) of the last value, for continuation lines.
    let mut last: Option<(String, String)> = None;

    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim_end();
        if line.trim().is_empty() {
            last = None;
            continue;
        }
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let Some((sec, key)) = &last else {
                return Err(IniError {
                    line: line_no,
                    reason: "indented line continues no option".into(),
                });
            };
            if let Some(entry) = sections.get_mut(sec).and_then(|s| s.get_mut(key)) {
                entry.value.push('\n');
                entry.value.push_str(line.trim_start());
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(IniError {
                    line: line_no,
                    reason: "section header has no closing ]".into(),
                });
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(IniError {
                    line: line_no,
                    reason: "empty section name".into(),
                });
            }
            sections.entry(name.to_owned()).or_default();
            section = Some(name.to_owned());
            last = None;
            continue;
        }
        let Some(split) = line.find(['=', ':']) else {
            return Err(IniError {
                line: line_no,
                reason: "neither a [section], a comment nor key = value (the line is not shown: \
                         it may hold a secret)"
                    .into(),
            });
        };
        let key = line[..split].trim();
        if key.is_empty() {
            return Err(IniError {
                line: line_no,
                reason: "option with an empty name".into(),
            });
        }
        let Some(sec) = &section else {
            return Err(IniError {
                line: line_no,
                reason: "an option comes before any [section]".into(),
            });
        };
        let value = unquote(line[split + 1..].trim());
        sections.entry(sec.clone()).or_default().insert(
            key.to_owned(),
            IniValue {
                value: value.to_owned(),
                line: line_no,
            },
        );
        last = Some((sec.clone(), key.to_owned()));
    }
    Ok(sections)
}

fn unquote(value: &str) -> &str {
    let bytes = value.as_bytes();
    if bytes.len() >= 2
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[0] == bytes[bytes.len() - 1]
    {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(s: &'a IniSections, sec: &str, key: &str) -> &'a str {
        &s[sec][key].value
    }

    #[test]
    fn upstream_sample_reads_as_oslo_reads_it() {
        let text = "\
# kuryr.conf
[DEFAULT]
bindir = /usr/libexec/kuryr
capability_scope: local

[neutron]
; keystoneauth
auth_url = http://127.0.0.1:5000/v3
password = pa#ss;word=x
username = \"kuryr\"
project_name = 'service'
region_name =
";
        let s = parse(text).unwrap();
        assert_eq!(get(&s, "DEFAULT", "bindir"), "/usr/libexec/kuryr");
        assert_eq!(get(&s, "DEFAULT", "capability_scope"), "local");
        assert_eq!(get(&s, "neutron", "password"), "pa#ss;word=x");
        assert_eq!(get(&s, "neutron", "username"), "kuryr");
        assert_eq!(get(&s, "neutron", "project_name"), "service");
        assert_eq!(get(&s, "neutron", "region_name"), "");
        assert_eq!(s["neutron"]["auth_url"].line, 8);
    }

    #[test]
    fn continuation_lines_and_last_value_wins() {
        let s =
            parse("[binding]\nenabled_drivers = veth,\n  vlan\nlink_iface = a\nlink_iface = b\n")
                .unwrap();
        assert_eq!(get(&s, "binding", "enabled_drivers"), "veth,\nvlan");
        assert_eq!(get(&s, "binding", "link_iface"), "b");
    }

    #[test]
    fn mismatched_quotes_are_kept() {
        let s = parse("[a]\nk = \"x'\n").unwrap();
        assert_eq!(get(&s, "a", "k"), "\"x'");
    }

    #[test]
    fn errors_never_echo_the_line() {
        let err = parse("[neutron]\npassword s3cret\n").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let err = parse("password = s3cret\n").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn broken_lines_name_the_line() {
        assert_eq!(parse("[a\n").unwrap_err().line, 1);
        assert_eq!(parse("k = v\n").unwrap_err().line, 1);
        assert_eq!(parse("[a]\nnot an option\n").unwrap_err().line, 2);
        assert_eq!(parse("[a]\n = v\n").unwrap_err().line, 2);
        assert_eq!(parse("  x\n").unwrap_err().line, 1);
    }
}
