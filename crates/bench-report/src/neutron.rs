//! Neutron's access log: what a lifecycle asks Neutron, by method and path with ids, tags
//! and query values blanked.

use std::collections::BTreeMap;

/// Requests rarer than this per container are left out of the mix.
const RARE: f64 = 0.05;

/// The request of one access-log line (`<time> <METHOD> <path> ...`) with ids, tags and
/// query values blanked: `GET /v2.0/ports?network_id=&fixed_ips=`.
pub fn request_kind(line: &str) -> Option<String> {
    let mut fields = line.split_whitespace();
    let _time = fields.next()?;
    let method = fields.next()?;
    let path = fields.next().unwrap_or("");
    Some(format!(
        "{method} {}",
        blank_values(&blank_tags(&blank_ids(path)))
    ))
}

/// The requests per container, most frequent first (then by name), without the rare ones.
pub fn request_mix(log: &str, containers: u64) -> Vec<(f64, String)> {
    if containers == 0 {
        return Vec::new();
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for kind in log.lines().filter_map(request_kind) {
        *counts.entry(kind).or_default() += 1;
    }
    let mut mix: Vec<(f64, String)> = counts
        .into_iter()
        .map(|(k, c)| (c as f64 / containers as f64, k))
        .filter(|(per, _)| *per >= RARE)
        .collect();
    // Sorted by the shown value, as `sort -k1,1nr -k2` did on the printed numbers.
    mix.sort_by(|a, b| {
        let (ra, rb) = (round1(a.0), round1(b.0));
        rb.total_cmp(&ra).then_with(|| a.1.cmp(&b.1))
    });
    mix
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// UUIDs (8-4-4-4-12 lowercase hex) become `{id}`.
fn blank_ids(path: &str) -> String {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    let b = path.as_bytes();
    let is_uuid_at = |i: usize| -> bool {
        let mut at = i;
        for (n, len) in SHAPE.iter().enumerate() {
            if n > 0 {
                if b.get(at) != Some(&b'-') {
                    return false;
                }
                at += 1;
            }
            let Some(part) = b.get(at..at + len) else {
                return false;
            };
            if !part.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                return false;
            }
            at += len;
        }
        true
    };
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if is_uuid_at(i) {
            out.push_str("{id}");
            i += 36;
        } else if let Some(c) = path[i..].chars().next() {
            out.push(c);
            i += c.len_utf8();
        } else {
            break;
        }
    }
    out
}

/// `/tags/<tag>` becomes `/tags/{tag}` (a tag runs to the next `/` or `?`).
fn blank_tags(path: &str) -> String {
    const TAGS: &str = "/tags/";
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find(TAGS) {
        let after = &rest[at + TAGS.len()..];
        let end = after.find(['/', '?']).unwrap_or(after.len());
        if end == 0 {
            out.push_str(&rest[..at + TAGS.len()]);
        } else {
            out.push_str(&rest[..at]);
            out.push_str("/tags/{tag}");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Query values (`=` up to the next `&`) become empty.
fn blank_values(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut skipping = false;
    for c in path.chars() {
        match c {
            '=' => {
                out.push('=');
                skipping = true;
            }
            '&' => {
                out.push('&');
                skipping = false;
            }
            _ if skipping => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f0c2a1e-7b5d-4c3e-9a1b-0123456789ab";

    #[test]
    fn ids_tags_and_values_blanked() {
        let line =
            |m: &str, p: &str| format!("2026-11-24T01:35:00.000+00:00 {m} {p} 200 12.0ms req-{ID}");
        assert_eq!(
            request_kind(&line(
                "PUT",
                &format!("/v2.0/ports/{ID}/tags/kuryr.net.uuid.lh:abc")
            ))
            .unwrap(),
            "PUT /v2.0/ports/{id}/tags/{tag}"
        );
        assert_eq!(
            request_kind(&line(
                "GET",
                "/v2.0/ports?network_id=x&fixed_ips=ip_address%3D10.0.0.2"
            ))
            .unwrap(),
            "GET /v2.0/ports?network_id=&fixed_ips="
        );
        assert_eq!(
            request_kind(&line("PUT", &format!("/v2.0/ports/{ID}/tags"))).unwrap(),
            "PUT /v2.0/ports/{id}/tags"
        );
        assert_eq!(
            request_kind(&line("GET", &format!("/v2.0/subnetpools/{ID}"))).unwrap(),
            "GET /v2.0/subnetpools/{id}"
        );
        assert_eq!(request_kind(""), None);
    }

    #[test]
    fn mix_per_container_without_rare_requests() {
        let mut log = String::new();
        for _ in 0..4 {
            log.push_str(&format!("t GET /v2.0/ports/{ID} 200 1ms r\n"));
        }
        for _ in 0..20 {
            log.push_str("t GET /v2.0/ports?tags=a 200 1ms r\n");
        }
        for _ in 0..4 {
            log.push_str("t POST /v2.0/ports 201 1ms r\n");
        }
        log.push_str("t DELETE /v2.0/networks/x 204 1ms r\n");
        let mix = request_mix(&log, 25);
        let shown: Vec<(f64, &str)> = mix.iter().map(|(p, k)| (*p, k.as_str())).collect();
        assert_eq!(
            shown,
            vec![
                (0.8, "GET /v2.0/ports?tags="),
                (0.16, "GET /v2.0/ports/{id}"),
                (0.16, "POST /v2.0/ports")
            ]
        );
    }
}
