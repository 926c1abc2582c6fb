//! Token-stream normalisation between the lexer and the LR parser.
//!
//! Three jobs, done here rather than in the grammar because they make the grammar
//! LALR(1) and its error recovery predictable:
//!
//! 1. **Delimiter balancing.** `{ } ( ) [ ]` are matched with a stack. An opener that
//!    is never closed is reported once (at the opener) and a synthetic closer is
//!    inserted where it must have ended; a stray closer is reported and dropped. The
//!    parser therefore always sees a balanced stream, so one missing `)` does not turn
//!    the rest of the file into a cascade of errors.
//! 2. **Newlines as terminators.** Statements end at a line break (or `;`, or where
//!    the next statement visibly starts on the same line), except
//!    inside `( )` / `[ ]` where lines may be continued freely. Blank lines collapse,
//!    a line break never follows `{` nor precedes a `{`, and one is guaranteed before
//!    every `}` and after every top-level block, and at the end of the file. The
//!    grammar's error productions resynchronise on these terminators.
//! 3. **Resource guards.** Nesting deeper than [`MAX_NESTING`] or a statement with
//!    more than [`MAX_OPERATORS`] operators is rejected before parsing, so later
//!    recursive passes (and `Drop` of the AST) cannot overflow the stack.

use crate::ast::Span;
use crate::lexer::{Spanned, Tok};
use crate::{ParseError, ParseErrorKind};

/// Maximum nesting of `( [ {` accepted.
pub const MAX_NESTING: usize = 256;
/// Maximum number of operators in one statement (bounds expression-tree depth).
pub const MAX_OPERATORS: usize = 2048;

/// The normalised stream, the problems found, and whether they are fatal (the
/// stream must not be parsed).
pub struct Normalized<'input> {
    pub toks: Vec<Spanned<'input>>,
    pub errors: Vec<ParseError>,
    pub fatal: bool,
}

fn closer_for(open: Tok<'_>) -> Tok<'static> {
    match open {
        Tok::LParen => Tok::RParen,
        Tok::LBracket => Tok::RBracket,
        _ => Tok::RBrace,
    }
}

pub fn normalize<'input>(raw: Vec<Spanned<'input>>, src_len: usize) -> Normalized<'input> {
    let mut n = Normalizer { out: Vec::with_capacity(raw.len() + 8), stack: Vec::new(), errors: Vec::new(), ops: 0 };
    for (i, &(l, tok, r)) in raw.iter().enumerate() {
        if tok == Tok::Newline && n.in_group() && n.group_left_open(raw.get(i + 1..).unwrap_or(&[])) {
            while let Some(&(ol, open @ (Tok::LParen | Tok::LBracket), or)) = n.stack.last() {
                n.stack.pop();
                n.errors.push(unclosed(ol, open, or));
                n.emit_closer(l, closer_for(open));
            }
        }
        if n.starts_statement(tok, raw.get(i + 1).map(|t| t.1)) {
            n.push((l, Tok::Newline, l));
        }
        match tok {
            Tok::LBrace | Tok::LParen | Tok::LBracket => {
                if n.stack.len() >= MAX_NESTING {
                    n.errors.push(ParseError::new(
                        ParseErrorKind::TooDeep,
                        Span::new(l, r),
                        format!("delimiters nested more than {MAX_NESTING} deep"),
                    ));
                    return n.fatal();
                }
                n.stack.push((l, tok, r));
                n.push((l, tok, r));
            }
            Tok::RBrace | Tok::RParen | Tok::RBracket => n.close(l, tok, r),
            _ => n.push((l, tok, r)),
        }
        if n.ops > MAX_OPERATORS {
            n.errors.push(ParseError::new(
                ParseErrorKind::TooDeep,
                Span::new(l, r),
                format!("statement has more than {MAX_OPERATORS} operators"),
            ));
            return n.fatal();
        }
    }
    // Close everything still open at the end of the file.
    while let Some((l, open, r)) = n.stack.pop() {
        n.errors.push(unclosed(l, open, r));
        n.emit_closer(src_len, closer_for(open));
    }
    n.push((src_len, Tok::Newline, src_len));
    Normalized { toks: n.out, errors: n.errors, fatal: false }
}

fn unclosed(l: usize, open: Tok<'_>, r: usize) -> ParseError {
    ParseError::new(ParseErrorKind::Unclosed, Span::new(l, r), format!("unclosed delimiter `{open}`"))
        .with_expected(vec![format!("`{}`", closer_for(open))])
}

struct Normalizer<'input> {
    out: Vec<Spanned<'input>>,
    stack: Vec<Spanned<'input>>,
    errors: Vec<ParseError>,
    /// Operators since the last statement terminator.
    ops: usize,
}

impl<'input> Normalizer<'input> {
    fn fatal(self) -> Normalized<'input> {
        Normalized { toks: Vec::new(), errors: self.errors, fatal: true }
    }

    /// Innermost open delimiter is `(` or `[`: line breaks are not terminators.
    fn in_group(&self) -> bool {
        matches!(self.stack.last(), Some((_, Tok::LParen | Tok::LBracket, _)))
    }

    fn last_is(&self, f: impl Fn(&Tok<'_>) -> bool) -> bool {
        self.out.last().is_some_and(|(_, t, _)| f(t))
    }

    fn push(&mut self, t: Spanned<'input>) {
        match t.1 {
            Tok::Newline => {
                if self.in_group() || self.out.is_empty() || self.last_is(|t| matches!(t, Tok::Newline | Tok::LBrace)) {
                    return;
                }
                self.ops = 0;
            }
            // `model m` + line break + `{`: the brace continues the line.
            Tok::LBrace if self.last_is(|t| *t == Tok::Newline) => {
                self.out.pop();
            }
            // The last statement of a block needs its terminator.
            Tok::RBrace if !self.last_is(|t| matches!(t, Tok::Newline | Tok::LBrace)) => {
                self.out.push((t.0, Tok::Newline, t.0));
            }
            ref op if op.is_operator() => self.ops += 1,
            _ => {}
        }
        self.out.push(t);
        // A block at top level ends its item even if more follows on the same line.
        if t.1 == Tok::RBrace && self.stack.is_empty() {
            self.out.push((t.2, Tok::Newline, t.2));
            self.ops = 0;
        }
    }

    /// Statements may share a line (`dim d = 4 dim k = 3`): an implicit terminator
    /// goes before a token that can only start a statement — a declaration keyword,
    /// or `name =` / `name :` right after a complete operand. Inside `( )`/`[ ]` the
    /// terminator is dropped again by [`Self::push`] (`f(lr = 0.1)` stays one line).
    fn starts_statement(&self, tok: Tok<'_>, next: Option<Tok<'_>>) -> bool {
        match tok {
            t if is_decl_keyword(t) => true,
            Tok::Ident(_) => {
                matches!(next, Some(Tok::Eq | Tok::Colon))
                    && self.last_is(|t| {
                        matches!(t, Tok::Ident(_) | Tok::Number(_) | Tok::RParen | Tok::RBracket | Tok::Gt)
                    })
            }
            _ => false,
        }
    }

    /// At a line break inside `( )`/`[ ]`: does it look like the group was left
    /// open by mistake? Yes when the line so far ends in a complete operand and the
    /// next line starts like a statement (`name =`, `name :`, `input`, ...). Then the
    /// group is closed here, so a missing `)` costs one error and not the next line.
    fn group_left_open(&self, rest: &[Spanned<'_>]) -> bool {
        let operand_ends = self.last_is(|t| matches!(t, Tok::Ident(_) | Tok::Number(_) | Tok::RParen | Tok::RBracket));
        let starts_stmt = match rest {
            [(_, Tok::Ident(_), _), (_, Tok::Eq | Tok::Colon, _), ..] => true,
            [(_, t, _), ..] => is_decl_keyword(*t) || matches!(t, Tok::RBrace),
            [] => false,
        };
        operand_ends && starts_stmt
    }

    /// Synthetic closer for an unclosed opener, zero-width at `at`.
    fn emit_closer(&mut self, at: usize, closer: Tok<'static>) {
        self.push((at, closer, at));
    }

    fn close(&mut self, l: usize, tok: Tok<'input>, r: usize) {
        let matches_open = |open: &Spanned<'_>| closer_for(open.1) == tok;
        match self.stack.iter().rposition(matches_open) {
            Some(pos) => {
                // Everything opened after the matching opener was left unclosed.
                while self.stack.len() > pos + 1 {
                    if let Some((ol, open, or)) = self.stack.pop() {
                        self.errors.push(unclosed(ol, open, or));
                        self.emit_closer(l, closer_for(open));
                    }
                }
                self.stack.pop();
                self.push((l, tok, r));
            }
            None => {
                let expected = match self.stack.last() {
                    Some((_, open, _)) => vec![format!("`{}`", closer_for(*open))],
                    None => vec![],
                };
                self.errors.push(
                    ParseError::new(
                        ParseErrorKind::Unmatched,
                        Span::new(l, r),
                        format!("unmatched closing delimiter `{tok}`"),
                    )
                    .with_expected(expected),
                );
            }
        }
    }
}

/// Keywords that can only begin a declaration or block (`model`, `input`, `dim`, ...).
fn is_decl_keyword(tok: Tok<'_>) -> bool {
    matches!(
        tok,
        Tok::Model | Tok::Train | Tok::Input | Tok::Label | Tok::Param | Tok::Fn | Tok::Dim | Tok::Format | Tok::Range
    )
}
