//! Markdown pieces: tables, and numbers shown with a fixed number of decimals or `n/a`.

/// A number with `decimals` decimals; `n/a` when missing, `inf` when infinite.
pub fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_infinite() => "inf".to_owned(),
        Some(v) => format!("{v:.decimals$}"),
        None => "n/a".to_owned(),
    }
}

/// A count, or `n/a`.
pub fn int<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| v.to_string())
}

/// KiB as MiB with one decimal: `16.1 MiB`.
pub fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

/// A target's result.
pub fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "pass",
        Some(false) => "**FAIL**",
        None => "n/a",
    }
}

/// A Markdown table: a header, then rows of as many cells.
#[derive(Debug)]
pub struct Table {
    out: String,
}

impl Table {
    /// Columns named by `header`; `right[i]` aligns column `i` to the right (numbers).
    pub fn new(header: &[&str], right: &[bool]) -> Table {
        let mut out = row(header.iter().copied());
        let rule = (0..header.len()).map(|i| {
            if right.get(i).copied().unwrap_or(false) {
                "---:"
            } else {
                "---"
            }
        });
        out.push_str(&row(rule));
        Table { out }
    }

    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        self.out.push_str(&row(cells.iter().map(AsRef::as_ref)));
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn row<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let cells: Vec<&str> = cells.collect();
    format!("| {} |\n", cells.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        assert_eq!(num(Some(359.649), 1), "359.6");
        assert_eq!(num(Some(1.0), 2), "1.00");
        assert_eq!(num(None, 1), "n/a");
        assert_eq!(num(Some(f64::INFINITY), 1), "inf");
        assert_eq!(mib(Some(16486)), "16.1 MiB");
        assert_eq!(int(Some(3)), "3");
        assert_eq!(verdict(Some(false)), "**FAIL**");
    }

    #[test]
    fn table() {
        let mut t = Table::new(&["a", "b"], &[false, true]);
        t.row(&["x", "1"]);
        assert_eq!(t.finish(), "| a | b |\n| --- | ---: |\n| x | 1 |\n");
    }
}
