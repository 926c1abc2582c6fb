//! Tokens of the language (logos).
//!
//! The lexer is deliberately forgiving: anything that starts like a number is one
//! `Number` token carrying its raw text (`1.2.3`, `0x`), so the checker can say
//! "bad numeric literal" with the exact spelling instead of the parser tripping over
//! a confusing token sequence. Characters that start no token become lexical errors
//! (reported once per run of bad characters) and are dropped from the stream.

use crate::ast::Span;
use logos::Logos;
use std::fmt;

#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq)]
#[logos(skip r"[ \t\r\f]+")]
#[logos(skip r"#[^\n]*")]
#[logos(skip r"//[^\n]*")]
pub enum Tok<'input> {
    #[token("model")]
    Model,
    #[token("train")]
    Train,
    #[token("input")]
    Input,
    #[token("label")]
    Label,
    #[token("param")]
    Param,
    #[token("fn")]
    Fn,
    #[token("dim")]
    Dim,
    #[token("in")]
    In,
    #[token("table")]
    Table,
    #[token("over")]
    Over,
    #[token("format")]
    Format,
    #[token("range")]
    Range,

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident(&'input str),
    /// Well-formed literals (`3`, `0.1`, `1e-3`) and sloppy ones (`1.2.3`, `0x`):
    /// longest match wins, so `1e-3` is one token and `1.2.3` is one (bad) token.
    #[regex(r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?", priority = 5)]
    #[regex(r"\.[0-9]+([eE][+-]?[0-9]+)?")]
    #[regex(r"[0-9][0-9A-Za-z_.]*", priority = 3)]
    Number(&'input str),

    /// Statement terminator: a line break or `;`. The token filter in `tokens.rs`
    /// removes the ones that are not meaningful (inside `(..)`/`[..]`, blank lines).
    #[token("\n")]
    #[token(";")]
    Newline,

    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token("=")]
    Eq,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("@")]
    At,
    #[token("^")]
    Caret,
}

impl Tok<'_> {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("name `{s}`"),
            Tok::Number(s) => format!("number `{s}`"),
            Tok::Newline => "end of line".to_string(),
            t => format!("`{t}`"),
        }
    }

    /// Binary or unary operator: counted by the complexity guard.
    pub fn is_operator(&self) -> bool {
        matches!(self, Tok::Plus | Tok::Minus | Tok::Star | Tok::Slash | Tok::At | Tok::Caret)
    }
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Tok::Model => "model",
            Tok::Train => "train",
            Tok::Input => "input",
            Tok::Label => "label",
            Tok::Param => "param",
            Tok::Fn => "fn",
            Tok::Dim => "dim",
            Tok::In => "in",
            Tok::Table => "table",
            Tok::Over => "over",
            Tok::Format => "format",
            Tok::Range => "range",
            Tok::Ident(s) | Tok::Number(s) => s,
            Tok::Newline => "\\n",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Lt => "<",
            Tok::Gt => ">",
            Tok::Comma => ",",
            Tok::Colon => ":",
            Tok::Eq => "=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::At => "@",
            Tok::Caret => "^",
        };
        f.write_str(s)
    }
}

/// A token with its byte span.
pub type Spanned<'input> = (usize, Tok<'input>, usize);

/// Lex the whole source. Returns the tokens and the spans of runs of characters
/// that start no token (adjacent bad characters are merged into one span).
pub fn lex(src: &str) -> (Vec<Spanned<'_>>, Vec<Span>) {
    let mut toks = Vec::new();
    let mut bad: Vec<Span> = Vec::new();
    let mut lexer = Tok::lexer(src);
    while let Some(res) = lexer.next() {
        let r = lexer.span();
        match res {
            Ok(t) => toks.push((r.start, t, r.end)),
            Err(()) => match bad.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ => bad.push(Span::new(r.start, r.end)),
            },
        }
    }
    (toks, bad)
}
