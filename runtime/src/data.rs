//! Labelled datasets in the shared CSV format.
//!
//! Header `label,f0,f1,...,f{d-1}`, then one row per sample: an integer class label in
//! `0..k`, then `d` floats. Every problem is a [`DataError`] naming the file and the
//! (1-based) line; nothing panics on bad input.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Features per sample (`d` each).
    pub x: Vec<Vec<f64>>,
    pub y: Vec<usize>,
    pub d: usize,
}

impl Dataset {
    /// A deterministic random subset of at most `n` samples, in file order. Datasets
    /// are often sorted by label, so the first `n` rows would be a biased sample.
    pub fn subset(&self, n: usize, seed: u64) -> Dataset {
        if n >= self.len() {
            return self.clone();
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        crate::rng::SplitMix::derive(seed, "subset").shuffle(&mut idx);
        idx.truncate(n);
        idx.sort_unstable();
        Dataset {
            x: idx.iter().map(|&i| self.x[i].clone()).collect(),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            d: self.d,
        }
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    /// Observed `[min, max]` of every feature (for `--fit-ranges`); `None` when empty.
    pub fn feature_ranges(&self) -> Option<Vec<(f64, f64)>> {
        let first = self.x.first()?;
        let mut r: Vec<(f64, f64)> = first.iter().map(|&v| (v, v)).collect();
        for row in &self.x[1..] {
            for (m, &v) in r.iter_mut().zip(row) {
                m.0 = m.0.min(v);
                m.1 = m.1.max(v);
            }
        }
        Some(r)
    }
    /// Observed `[min, max]` over all features.
    pub fn overall_range(&self) -> Option<(f64, f64)> {
        let r = self.feature_ranges()?;
        Some(r.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, &(lo, hi)| (a.0.min(lo), a.1.max(hi))))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DataError {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is the file as a whole (cannot read it).
    pub line: usize,
    pub kind: DataErrorKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DataErrorKind {
    Io(String),
    Empty,
    MissingHeader {
        found: String,
    },
    /// Header declares a different feature count than the model expects.
    HeaderFeatures {
        expected: usize,
        found: usize,
    },
    Ragged {
        expected: usize,
        found: usize,
    },
    NotANumber {
        column: usize,
        text: String,
    },
    BadLabel {
        text: String,
    },
    LabelOutOfRange {
        label: usize,
        classes: usize,
    },
    NoRows,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.line == 0 {
            write!(f, "{file}: ")?;
        } else {
            write!(f, "{file}:{}: ", self.line)?;
        }
        match &self.kind {
            DataErrorKind::Io(e) => write!(f, "cannot read: {e}"),
            DataErrorKind::Empty => write!(f, "empty file (expected a header `label,f0,...`)"),
            DataErrorKind::MissingHeader { found } => {
                write!(f, "missing header: expected `label,f0,f1,...`, found `{found}`")
            }
            DataErrorKind::HeaderFeatures { expected, found } => {
                write!(f, "header has {found} feature columns but the model expects d = {expected}")
            }
            DataErrorKind::Ragged { expected, found } => {
                write!(f, "row has {found} columns, expected {expected} (label + features)")
            }
            DataErrorKind::NotANumber { column, text } => write!(f, "column {column}: `{text}` is not a number"),
            DataErrorKind::BadLabel { text } => write!(f, "label `{text}` is not a non-negative integer"),
            DataErrorKind::LabelOutOfRange { label, classes } => {
                write!(
                    f,
                    "label {label} out of range for {classes} classes (expected 0..{})",
                    classes.saturating_sub(1)
                )
            }
            DataErrorKind::NoRows => write!(f, "no data rows after the header"),
        }
    }
}

impl std::error::Error for DataError {}

/// What the model expects of the file (either may be left open).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    pub features: Option<usize>,
    pub classes: Option<usize>,
}

pub fn load_csv(path: &Path, expect: Expect) -> Result<Dataset, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError {
        file: path.to_path_buf(),
        line: 0,
        kind: DataErrorKind::Io(e.to_string()),
    })?;
    parse_csv(path, &text, expect)
}

/// Parse CSV text; `path` only names the file in errors.
pub fn parse_csv(path: &Path, text: &str, expect: Expect) -> Result<Dataset, DataError> {
    let err = |line: usize, kind| DataError { file: path.to_path_buf(), line, kind };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let (hl, header) = lines.find(|(_, l)| !l.trim().is_empty()).ok_or_else(|| err(1, DataErrorKind::Empty))?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let is_header = cols.first() == Some(&"label") && cols[1..].iter().all(|c| c.starts_with('f'));
    if !is_header || cols.len() < 2 {
        let found: String = header.chars().take(40).collect();
        return Err(err(hl, DataErrorKind::MissingHeader { found }));
    }
    let d = cols.len() - 1;
    if let Some(e) = expect.features.filter(|&e| e != d) {
        return Err(err(hl, DataErrorKind::HeaderFeatures { expected: e, found: d }));
    }
    let mut x = Vec::new();
    let mut y = Vec::new();
    for (ln, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != d + 1 {
            return Err(err(ln, DataErrorKind::Ragged { expected: d + 1, found: fields.len() }));
        }
        let label: usize =
            fields[0].parse().map_err(|_| err(ln, DataErrorKind::BadLabel { text: fields[0].into() }))?;
        if let Some(k) = expect.classes.filter(|&k| label >= k) {
            return Err(err(ln, DataErrorKind::LabelOutOfRange { label, classes: k }));
        }
        let row = fields[1..]
            .iter()
            .enumerate()
            .map(|(j, f)| match f.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(err(ln, DataErrorKind::NotANumber { column: j + 2, text: (*f).into() })),
            })
            .collect::<Result<Vec<f64>, _>>()?;
        x.push(row);
        y.push(label);
    }
    if y.is_empty() {
        return Err(err(hl, DataErrorKind::NoRows));
    }
    Ok(Dataset { x, y, d })
}

#[cfg(test)]
mod tests {

    #[test]
    fn subset_is_deterministic_unbiased_and_in_file_order() {
        // Sorted by label, like the bundled mnist-vit files.
        let ds = Dataset { x: (0..100).map(|i| vec![i as f64]).collect(), y: (0..100).map(|i| i / 20).collect(), d: 1 };
        let a = ds.subset(25, 7);
        assert_eq!(a.len(), 25);
        assert_eq!(a, ds.subset(25, 7));
        assert_ne!(a, ds.subset(25, 8));
        let labels: std::collections::BTreeSet<usize> = a.y.iter().copied().collect();
        assert!(labels.len() >= 4, "{labels:?}");
        assert!(a.x.windows(2).all(|w| w[0][0] < w[1][0]), "file order kept");
        assert_eq!(ds.subset(1000, 7), ds);
    }

    use super::*;

    fn parse(text: &str, expect: Expect) -> Result<Dataset, DataError> {
        parse_csv(Path::new("t.csv"), text, expect)
    }

    #[test]
    fn good_file_and_ranges() {
        let d = parse("label,f0,f1\n0,0.5,-1\n2,1.5,3e-1\n\n", Expect { features: Some(2), classes: Some(3) }).unwrap();
        assert_eq!(d.y, vec![0, 2]);
        assert_eq!(d.x[1], vec![1.5, 0.3]);
        assert_eq!(d.feature_ranges().unwrap(), vec![(0.5, 1.5), (-1.0, 0.3)]);
        assert_eq!(d.overall_range().unwrap(), (-1.0, 1.5));
    }

    fn msg(text: &str, expect: Expect) -> String {
        parse(text, expect).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = Expect { features: Some(2), classes: Some(3) };
        assert_eq!(msg("", e), "t.csv:1: empty file (expected a header `label,f0,...`)");
        assert!(msg("0,1,2\n", e).starts_with("t.csv:1: missing header"), "{}", msg("0,1,2\n", e));
        assert_eq!(
            msg("label,f0,f1,f2\n0,1,2,3\n", e),
            "t.csv:1: header has 3 feature columns but the model expects d = 2"
        );
        assert_eq!(msg("label,f0,f1\n0,1,2\n1,2\n", e), "t.csv:3: row has 2 columns, expected 3 (label + features)");
        assert_eq!(msg("label,f0,f1\n0,1,abc\n", e), "t.csv:2: column 3: `abc` is not a number");
        assert_eq!(msg("label,f0,f1\n0,1,nan\n", e), "t.csv:2: column 3: `nan` is not a number");
        assert_eq!(msg("label,f0,f1\n-1,1,2\n", e), "t.csv:2: label `-1` is not a non-negative integer");
        assert_eq!(
            msg("label,f0,f1\n0,1,2\n\n3,1,2\n", e),
            "t.csv:4: label 3 out of range for 3 classes (expected 0..2)"
        );
        assert_eq!(msg("label,f0,f1\n", e), "t.csv:1: no data rows after the header");
        let io = load_csv(Path::new("/nonexistent/x.csv"), e).unwrap_err();
        assert_eq!(io.line, 0);
        assert!(io.to_string().starts_with("/nonexistent/x.csv: cannot read"));
    }
}
