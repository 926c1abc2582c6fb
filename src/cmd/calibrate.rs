//! `blindtuner calibrate-ranges FILE.csv`: observed feature ranges.
//!
//! The data owner runs this on their own (clear) data before encrypting: the range
//! declared on an input is its quantization range, so it should cover the data.

use crate::cli::CalibrateArgs;
use crate::error::CliError;
use blindtuner_runtime::data::{load_csv, Expect};
use serde_json::json;

pub fn run(args: &CalibrateArgs) -> Result<(), CliError> {
    let ds = load_csv(&args.data, Expect::default()).map_err(|e| CliError::user(e.to_string()))?;
    let per = ds.feature_ranges().ok_or_else(|| CliError::user(format!("{}: no rows", args.data.display())))?;
    let (lo, hi) = ds.overall_range().unwrap_or((0.0, 0.0));
    if args.json {
        let v = json!({
            "file": args.data.display().to_string(),
            "samples": ds.len(),
            "features": ds.d,
            "range": [lo, hi],
            "per_feature": per.iter().map(|&(a, b)| [a, b]).collect::<Vec<_>>(),
        });
        println!("{v}");
        return Ok(());
    }
    println!("{}: {} samples, {} features", args.data.display(), ds.len(), ds.d);
    println!("observed range over all features: [{lo}, {hi}]");
    println!("suggested declaration:  input x : fixed[{}] in [{}, {}]", ds.d, lo.floor(), hi.ceil());
    println!();
    println!("{:>8} {:>12} {:>12}", "feature", "min", "max");
    for (i, (a, b)) in per.iter().enumerate() {
        println!("{:>8} {:>12.6} {:>12.6}", format!("f{i}"), a, b);
    }
    Ok(())
}
