//! Diagnostics as data.
//!
//! Every phase of the compiler (parse, check, passes) reports problems as
//! [`Diagnostic`] values; nothing prints. [`render`] is the one place that turns
//! them into text (with codespan-reporting), so the CLI and the snapshot tests see
//! exactly the same output.

use blindtuner_grammar::ast::Span;
use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Severity {
    Error,
    Warning,
    Note,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
    /// The primary label gets the caret (`^^^`); secondary ones get dashes.
    pub primary: bool,
}

/// One problem found in a spec. `code` is stable (`E0xxx` errors, `W0xxx`
/// warnings) so users and tests can refer to it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: vec![],
            notes: vec![],
            hint: None,
        }
    }
    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message) }
    }
    /// Primary label: where the problem is.
    pub fn at(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { span, message: message.into(), primary: true });
        self
    }
    /// Secondary label: related place (e.g. the first definition of a duplicate).
    pub fn also(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { span, message: message.into(), primary: false });
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
    /// Primary span, for sorting.
    pub fn primary_span(&self) -> Span {
        self.labels.iter().find(|l| l.primary).or(self.labels.first()).map(|l| l.span).unwrap_or_default()
    }
}

pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

/// Render diagnostics the way the CLI prints them. `color` selects ANSI colours.
pub fn render(file_name: &str, source: &str, diags: &[Diagnostic], color: bool) -> String {
    let file = SimpleFile::new(file_name, source);
    let config = term::Config::default();
    let mut out = if color {
        Buffer::Color(term::termcolor::Buffer::ansi())
    } else {
        Buffer::Plain(term::termcolor::Buffer::no_color())
    };
    for d in diags {
        let cd = to_codespan(d, source.len());
        let buf = match &mut out {
            Buffer::Color(b) | Buffer::Plain(b) => b,
        };
        // Writing into an in-memory buffer cannot fail except on a span bug; fall back
        // to a plain line so a diagnostic is never lost.
        if term::emit(buf, &config, &file, &cd).is_err() {
            use std::io::Write;
            let _ = writeln!(buf, "{}[{}]: {}", sev_word(d.severity), d.code, d.message);
        }
    }
    let bytes = match out {
        Buffer::Color(b) | Buffer::Plain(b) => b.into_inner(),
    };
    String::from_utf8_lossy(&bytes).into_owned()
}

enum Buffer {
    Color(term::termcolor::Buffer),
    Plain(term::termcolor::Buffer),
}

fn sev_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

fn to_codespan(d: &Diagnostic, len: usize) -> cs::Diagnostic<()> {
    let sev = match d.severity {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
        Severity::Note => cs::Severity::Note,
    };
    // Clamp spans so a bad span can never make the renderer fail.
    let clamp = |s: Span| {
        let start = s.start.min(len);
        start..s.end.clamp(start, len)
    };
    let labels = d
        .labels
        .iter()
        .map(|l| {
            let style = if l.primary { cs::LabelStyle::Primary } else { cs::LabelStyle::Secondary };
            cs::Label::new(style, (), clamp(l.span)).with_message(l.message.clone())
        })
        .collect();
    let mut notes = d.notes.clone();
    if let Some(h) = &d.hint {
        notes.push(format!("hint: {h}"));
    }
    cs::Diagnostic::new(sev).with_code(d.code).with_message(d.message.clone()).with_labels(labels).with_notes(notes)
}
