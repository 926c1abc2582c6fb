//! Which named dimensions a dataset determines.
//!
//! `blindtuner run --data PREFIX` trains a spec on data whose feature count and
//! class count may differ from the spec's defaults (`dim d = 64` in the spec,
//! 16 features in `mnist-vit16`). The dims to override are the ones that name
//! the first input's length and the first label's class count.

use blindtuner_grammar::ast::{ExprKind, File, Item, Stmt, TensorType};

/// Names of the dims that give the first input's length and the first label's classes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataDims {
    pub features: Option<String>,
    pub classes: Option<String>,
}

pub fn data_dims(file: &File) -> DataDims {
    let mut out = DataDims::default();
    for item in &file.items {
        let Item::Model(m) = item else { continue };
        for s in &m.stmts {
            match s {
                Stmt::Input { ty, .. } if out.features.is_none() => out.features = last_dim_name(ty),
                Stmt::Label { ty, .. } if out.classes.is_none() => out.classes = last_dim_name(ty),
                _ => {}
            }
        }
        break;
    }
    out
}

fn last_dim_name(ty: &TensorType) -> Option<String> {
    match &ty.dims.last()?.kind {
        ExprKind::Name(n) => Some(n.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_named_dims() {
        let src = "model m { dim d = 4 dim k = 3 input x : fixed[d] in [0, 1] label y : onehot[k] }";
        let (file, _) = blindtuner_grammar::parse(src);
        let dd = data_dims(&file);
        assert_eq!(dd.features.as_deref(), Some("d"));
        assert_eq!(dd.classes.as_deref(), Some("k"));
    }

    #[test]
    fn literal_dims_are_not_overridable() {
        let src = "model m { input x : fixed[4] in [0, 1] label y : onehot[3] }";
        let (file, _) = blindtuner_grammar::parse(src);
        assert_eq!(data_dims(&file), DataDims::default());
    }
}
