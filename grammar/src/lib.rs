//! Front end of the blindtuner language: lexer, parser, AST.
//!
//! [`parse`] never fails and never panics: it always returns a (possibly partial)
//! [`ast::File`] plus every syntax problem it found, so the checker can report
//! independent errors of one file in a single run.
pub mod ast;
pub mod lexer;
mod messages;
mod tokens;

use ast::Span;
use lalrpop_util::lalrpop_mod;

lalrpop_mod!(
    #[allow(clippy::all, clippy::pedantic, unused_qualifications, unused_parens)]
    grammar
);

pub use tokens::{MAX_NESTING, MAX_OPERATORS};

/// What went wrong while turning text into a tree. The checker maps each kind to a
/// stable diagnostic code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// The token sequence does not fit the grammar.
    Syntax,
    /// A character that starts no token.
    UnexpectedChar,
    /// An opening delimiter that is never closed.
    Unclosed,
    /// A closing delimiter with no matching opener.
    Unmatched,
    /// Nesting or expression size beyond the parser's limits.
    TooDeep,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    pub span: Span,
    /// Readable, e.g. "unexpected `}`, expected an expression".
    pub message: String,
    /// Friendly names of what would have been accepted (deduplicated, capped).
    pub expected: Vec<String>,
    pub kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, span: Span, message: impl Into<String>) -> ParseError {
        ParseError { span, message: message.into(), expected: Vec::new(), kind }
    }
    pub(crate) fn with_expected(mut self, expected: Vec<String>) -> ParseError {
        self.expected = expected;
        self
    }
}

/// Value of a numeric literal, or `None` when its spelling is not a number
/// (`1.2.3`, `0x`); the literal text is kept in the AST either way.
pub fn parse_number(text: &str) -> Option<f64> {
    let ok_chars = text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !ok_chars {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Build a binary node (used by the grammar actions).
pub(crate) fn binary(op: ast::BinOp, lhs: ast::Expr, rhs: ast::Expr, l: usize, r: usize) -> ast::Expr {
    ast::Expr { kind: ast::ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span: Span::new(l, r) }
}

/// Parse a whole file. Always returns a tree (partial where there were errors,
/// with `Error` nodes) and the errors sorted by position.
pub fn parse(src: &str) -> (ast::File, Vec<ParseError>) {
    let (raw, bad_chars) = lexer::lex(src);
    let mut errors: Vec<ParseError> = bad_chars
        .into_iter()
        .map(|span| {
            let text = src.get(span.start..span.end).unwrap_or("?");
            let (what, n) = match text.chars().count() {
                1 => ("character", String::new()),
                n => ("characters", format!(" ({n} characters)")),
            };
            ParseError::new(
                ParseErrorKind::UnexpectedChar,
                span,
                format!("unexpected {what} `{}`{n}", text.escape_debug()),
            )
        })
        .collect();
    let norm = tokens::normalize(raw, src.len());
    errors.extend(norm.errors);
    // Where nothing could be parsed, the whole file is one `Error` item, so later
    // passes know the (empty) tree is not the user's intent.
    let unparsed = || ast::File { items: vec![ast::Item::Error(Span::new(0, src.len()))] };
    if norm.fatal {
        errors.sort_by_key(|e| e.span);
        return (unparsed(), errors);
    }

    let mut recovered = Vec::new();
    let result = grammar::FileParser::new().parse(&mut recovered, norm.toks.into_iter().map(Ok::<_, ()>));
    let file = match result {
        Ok(file) => file,
        Err(e) => {
            errors.push(messages::from_lalrpop(e, src.len()));
            unparsed()
        }
    };
    errors.extend(recovered.into_iter().map(|r| messages::from_lalrpop(r.error, src.len())));
    errors.sort_by_key(|e| e.span);
    (file, errors)
}
