//! oslo.config's `$` substitution in option values, so that a value upstream reads as
//! `pa$$word` -> `pa$word` reads the same here:
//!
//! - `\$` and `$$` are a literal `$`;
//! - `$name` and `${name}` (names `[_a-zA-Z][._a-zA-Z0-9]*`) are replaced by the option
//!   `name` of the same section, else of `[DEFAULT]`; `${group.name}` names another section;
//! - a `$` that starts no name is kept as it is;
//! - a name that is not set is an error (oslo fails too), which says how to write a `$`.

use super::sources::RawConfig;

/// How deep references may nest before they are taken for a loop.
const MAX_DEPTH: usize = 8;

/// A reference that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "[{section}] {option} refers to ${reference}, which is not set \
     (write a literal $ as $$)"
)]
pub struct SubstitutionError {
    pub section: String,
    pub option: String,
    pub reference: String,
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c == '.' || c.is_ascii_alphanumeric()
}

/// Substitute `value`, an option of `section`, against the other options in `raw`.
pub fn substitute(
    raw: &RawConfig,
    section: &str,
    option: &str,
    value: &str,
) -> Result<String, SubstitutionError> {
    expand(raw, section, option, value, 0)
}

fn expand(
    raw: &RawConfig,
    section: &str,
    option: &str,
    value: &str,
    depth: usize,
) -> Result<String, SubstitutionError> {
    if !value.contains('$') {
        return Ok(value.to_owned());
    }
    let value = value.replace("\\$", "$$");
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // `$$`: a literal dollar.
        if chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        // `${name}` or `$name`.
        let (name, next) = if chars.get(i + 1) == Some(&'{') {
            let start = i + 2;
            let mut end = start;
            while end < chars.len() && is_name_char(chars[end]) {
                end += 1;
            }
            if end > start && is_name_start(chars[start]) && chars.get(end) == Some(&'}') {
                (chars[start..end].iter().collect::<String>(), end + 1)
            } else {
                (String::new(), i + 1)
            }
        } else {
            let start = i + 1;
            let mut end = start;
            if start < chars.len() && is_name_start(chars[start]) {
                while end < chars.len() && is_name_char(chars[end]) {
                    end += 1;
                }
            }
            (chars[start..end].iter().collect::<String>(), end)
        };
        if name.is_empty() {
            // Not a placeholder: oslo keeps it.
            out.push('$');
            i += 1;
            continue;
        }
        out.push_str(&resolve(raw, section, option, &name, depth)?);
        i = next;
    }
    Ok(out)
}

fn resolve(
    raw: &RawConfig,
    section: &str,
    option: &str,
    name: &str,
    depth: usize,
) -> Result<String, SubstitutionError> {
    let missing = || SubstitutionError {
        section: section.to_owned(),
        option: option.to_owned(),
        reference: name.to_owned(),
    };
    if depth >= MAX_DEPTH {
        return Err(missing());
    }
    let (target_section, key) = match name.split_once('.') {
        Some((group, key)) => (normalize_section(group), key.to_owned()),
        None => (section.to_owned(), name.to_owned()),
    };
    let found = raw
        .get(&target_section, &key)
        .map(|v| (target_section.clone(), key.clone(), v))
        .or_else(|| {
            raw.get("DEFAULT", name)
                .map(|v| ("DEFAULT".to_owned(), name.to_owned(), v))
        });
    let Some((found_section, found_key, value)) = found else {
        return Err(missing());
    };
    expand(raw, &found_section, &found_key, &value.value, depth + 1)
}

/// oslo.config section names: `DEFAULT` as is, every other name in lower case.
pub fn normalize_section(name: &str) -> String {
    if name == "DEFAULT" {
        name.to_owned()
    } else {
        name.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::super::sources::Origin;
    use super::*;

    fn raw(pairs: &[(&str, &str, &str)]) -> RawConfig {
        let mut raw = RawConfig::default();
        for (s, k, v) in pairs {
            raw.set(s, k, (*v).to_owned(), Origin::Env("test".into()));
        }
        raw
    }

    #[test]
    fn dollars_as_oslo_reads_them() {
        let r = raw(&[
            ("DEFAULT", "state_path", "/var/lib/kuryr"),
            ("neutron", "region_name", "R1"),
            ("binding", "link_iface", "eth0"),
        ]);
        let sub = |v: &str| substitute(&r, "neutron", "x", v);
        assert_eq!(sub("pa$$word").unwrap(), "pa$word");
        assert_eq!(sub("pa\\$word").unwrap(), "pa$word");
        assert_eq!(sub("$state_path/certs").unwrap(), "/var/lib/kuryr/certs");
        assert_eq!(sub("${state_path}x").unwrap(), "/var/lib/kuryrx");
        assert_eq!(sub("$region_name").unwrap(), "R1", "same section first");
        assert_eq!(sub("${binding.link_iface}").unwrap(), "eth0");
        assert_eq!(sub("${Binding.link_iface}").unwrap(), "eth0");
        assert_eq!(sub("cost $5 $").unwrap(), "cost $5 $", "not a placeholder");
        assert_eq!(sub("${}").unwrap(), "${}");
        assert_eq!(sub("no dollar").unwrap(), "no dollar");
    }

    #[test]
    fn unset_references_and_loops_are_errors() {
        let r = raw(&[("DEFAULT", "a", "$b"), ("DEFAULT", "b", "$a")]);
        let err = substitute(&r, "neutron", "password", "pa$word").unwrap_err();
        assert_eq!(err.reference, "word");
        assert!(err
            .to_string()
            .contains("[neutron] password refers to $word"));
        assert!(err.to_string().contains("$$"));
        assert!(substitute(&r, "DEFAULT", "a", "$a").is_err());
    }

    #[test]
    fn section_names() {
        assert_eq!(normalize_section("DEFAULT"), "DEFAULT");
        assert_eq!(normalize_section("Neutron"), "neutron");
    }
}
