//! Turning LALRPOP's errors into readable [`ParseError`]s.
//!
//! LALRPOP reports expected tokens by their grammar spelling (`"\"name\""`,
//! `"\"(\""`, ...) and lists every token that could start an expression. Users want
//! "expected an expression", so the raw list is folded into a few friendly names.

use crate::ast::Span;
use crate::lexer::Tok;
use crate::{ParseError, ParseErrorKind};

type LalrError<'a> = lalrpop_util::ParseError<usize, Tok<'a>, ()>;

/// At most this many alternatives are listed in a message.
const MAX_EXPECTED: usize = 5;

pub(crate) fn from_lalrpop(e: LalrError<'_>, src_len: usize) -> ParseError {
    let (span, found, expected) = match e {
        LalrError::UnrecognizedToken { token: (l, t, r), expected } => {
            // A zero-width token was synthesised by the normaliser (implicit line end
            // or closer): describe it by what it stands for.
            let found = if l == r && t == Tok::Newline { "end of line".to_string() } else { t.describe() };
            (Span::new(l, r), found, expected)
        }
        LalrError::UnrecognizedEof { location, expected } => {
            let at = location.min(src_len);
            (Span::new(at, at), "end of file".to_string(), expected)
        }
        LalrError::ExtraToken { token: (l, t, r) } => (Span::new(l, r), t.describe(), vec![]),
        LalrError::InvalidToken { location } => (Span::new(location, location), "invalid token".to_string(), vec![]),
        LalrError::User { .. } => (Span::new(0, 0), "input".to_string(), vec![]),
    };
    let expected = friendly(&expected);
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("unexpected {found}, expected {}", join_or(&expected))
    };
    ParseError::new(ParseErrorKind::Syntax, span, message).with_expected(expected)
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Fold LALRPOP's terminal names into what a user would call them.
fn friendly(raw: &[String]) -> Vec<String> {
    let terms: Vec<String> = raw.iter().map(|s| unquote(s)).collect();
    let has = |t: &str| terms.iter().any(|x| x == t);
    let expr_start = has("name") && has("number") && has("(") && has("-");
    let operators = has("+") && has("*");
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    if expr_start {
        push("an expression".to_string());
    }
    if operators {
        push("an operator".to_string());
    }
    for t in &terms {
        let folded = (expr_start && matches!(t.as_str(), "name" | "number" | "(" | "-" | "["))
            || (operators && matches!(t.as_str(), "+" | "-" | "*" | "/" | "@" | "^"));
        if folded {
            continue;
        }
        push(match t.as_str() {
            "name" => "a name".to_string(),
            "number" => "a number".to_string(),
            "\\n" | "\n" => "end of line".to_string(),
            other => format!("`{other}`"),
        });
    }
    out.truncate(MAX_EXPECTED);
    out
}

fn unquote(s: &str) -> String {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s).to_string()
}
