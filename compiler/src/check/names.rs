//! Scopes: one namespace per model for dims, tensors and functions.
//!
//! Definitions are recorded with their span so a duplicate can point back at the
//! first one, and lookups that fail can suggest the closest existing name.

use super::codes;
use crate::diag::Diagnostic;
use crate::spec::{FuncId, InputId, LabelId, LetId, ParamId};
use blindtuner_grammar::ast::{Ident, Span};
use std::collections::HashMap;

/// What a name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entity {
    Dim(usize),
    Input(InputId),
    Label(LabelId),
    Param(ParamId),
    Let(LetId),
    /// A user function with its number of parameters.
    Func(FuncId, usize),
}

impl Entity {
    pub fn describe(self) -> &'static str {
        match self {
            Entity::Dim(_) => "dimension",
            Entity::Input(_) => "input",
            Entity::Label(_) => "label",
            Entity::Param(_) => "parameter",
            Entity::Let(_) => "binding",
            Entity::Func(..) => "function",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Scope {
    names: HashMap<String, (Entity, Span)>,
}

impl Scope {
    /// Define `name`; on a duplicate, report it (pointing at both) and keep the first.
    pub fn define(&mut self, name: &Ident, entity: Entity, diags: &mut Vec<Diagnostic>) -> bool {
        if let Some((prev, prev_span)) = self.names.get(&name.name) {
            diags.push(
                Diagnostic::error(codes::DUPLICATE, format!("`{}` is defined more than once", name.name))
                    .at(name.span, "redefined here")
                    .also(*prev_span, format!("first defined here as a {}", prev.describe()))
                    .hint("rename one of the two definitions"),
            );
            return false;
        }
        self.names.insert(name.name.clone(), (entity, name.span));
        true
    }

    pub fn get(&self, name: &str) -> Option<Entity> {
        self.names.get(name).map(|(e, _)| *e)
    }

    /// Closest defined name accepted by `filter`, for "did you mean" hints.
    pub fn suggest(&self, name: &str, filter: impl Fn(Entity) -> bool) -> Option<String> {
        suggest(name, self.names.iter().filter(|(_, (e, _))| filter(*e)).map(|(n, _)| n.as_str()))
    }
}

/// The candidate closest to `name` by edit distance, if close enough to be a typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    // One edit in a one-letter name is a different name, not a typo.
    let len = name.chars().count();
    let limit = (len / 3).max(1).min(len.saturating_sub(1));
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        // Ties broken by name so the hint is deterministic.
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, c)| c.to_string())
}

/// Levenshtein distance (names are short; the quadratic table is fine).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Report an undefined name, with a "did you mean" hint when one is close.
pub fn undefined(what: &str, name: &str, span: Span, suggestion: Option<String>) -> Diagnostic {
    let d = Diagnostic::error(codes::UNDEFINED, format!("undefined {what} `{name}`")).at(span, "not defined");
    match suggestion {
        Some(s) => d.hint(format!("did you mean `{s}`?")),
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(suggest("W3", ["W1", "W2", "b1"]), Some("W1".to_string()));
        assert_eq!(suggest("zzz", ["W1", "b1"]), None);
    }
}
