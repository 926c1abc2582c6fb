//! Parser unit tests: the example parses, precedence, recovery, limits.

use blindtuner_grammar::ast::{ExprKind, File, Item, Stmt, TrainItem, UnOp};
use blindtuner_grammar::{parse, ParseErrorKind};

const EXAMPLE: &str = include_str!("../../compiler/tests/data/example.bt");

fn parse_ok(src: &str) -> File {
    let (file, errors) = parse(src);
    assert!(errors.is_empty(), "unexpected errors: {errors:#?}");
    file
}

/// The expression of the single `let` in `model m { v = <expr> }`, as an S-expression.
fn let_sexpr(expr: &str) -> String {
    let file = parse_ok(&format!("model m {{ v = {expr} }}"));
    let Item::Model(m) = &file.items[0] else { panic!("not a model") };
    let Stmt::Let { value, .. } = &m.stmts[0] else { panic!("not a let") };
    sexpr(&value.kind)
}

fn sexpr(e: &ExprKind) -> String {
    match e {
        ExprKind::Number { text, .. } => text.clone(),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Unary { op: UnOp::Neg, operand } => format!("(neg {})", sexpr(&operand.kind)),
        ExprKind::Binary { op, lhs, rhs } => format!("({} {} {})", op.symbol(), sexpr(&lhs.kind), sexpr(&rhs.kind)),
        ExprKind::Call { func, args } => {
            let args: Vec<String> = args.iter().map(|a| sexpr(&a.value.kind)).collect();
            format!("({} {})", func.name, args.join(" "))
        }
        ExprKind::List(items) => format!("[{}]", items.iter().map(|i| sexpr(&i.kind)).collect::<Vec<_>>().join(" ")),
        ExprKind::Error => "ERR".to_string(),
    }
}

#[test]
fn example_parses() {
    let file = parse_ok(EXAMPLE);
    assert_eq!(file.items.len(), 4);
    assert!(matches!(&file.items[0], Item::Func(f) if f.name.name == "hswish" && f.params.len() == 1));
    let Item::Model(m) = &file.items[2] else { panic!("third item is not a model") };
    assert_eq!(m.name.name, "mnist_vit_mlp");
    assert_eq!(m.stmts.len(), 13);
    assert!(matches!(&m.stmts[3], Stmt::Input { range: Some(_), .. }));
    assert!(matches!(&m.stmts[11], Stmt::Let { range: Some(_), .. }));
    let Item::Train(t) = &file.items[3] else { panic!("fourth item is not a train block") };
    assert_eq!(t.items.len(), 8);
    assert!(matches!(&t.items[6], TrainItem::Format { ty, .. } if ty.format.as_ref().map(Vec::len) == Some(2)));
    assert!(matches!(&t.items[7], TrainItem::Range { target, .. } if target.name == "z1"));
    // Spans point at the source text.
    assert_eq!(&EXAMPLE[m.name.span.start..m.name.span.end], "mnist_vit_mlp");
    // The AST serialises for `--emit ast`.
    let json = serde_json::to_string(&file).expect("serialise");
    assert!(json.contains("\"Model\""));
}

#[test]
fn precedence() {
    assert_eq!(let_sexpr("a + b * c"), "(+ a (* b c))");
    assert_eq!(let_sexpr("a - b - c"), "(- (- a b) c)");
    assert_eq!(let_sexpr("W @ x + b"), "(+ (@ W x) b)");
    assert_eq!(let_sexpr("-a * b"), "(* (neg a) b)");
    assert_eq!(let_sexpr("-2^2"), "(neg (^ 2 2))");
    assert_eq!(let_sexpr("2^-40"), "(^ 2 (neg 40))");
    assert_eq!(let_sexpr("2^3^2"), "(^ 2 (^ 3 2))");
    assert_eq!(let_sexpr("(a + b) * c"), "(* (+ a b) c)");
    assert_eq!(let_sexpr("f(a, n = 2 * b)"), "(f a (* 2 b))");
}

#[test]
fn lines_continue_inside_parentheses() {
    let file = parse_ok("model m {\n  z = f(a,\n        b)\n  w = [1,\n 2]\n}\n");
    let Item::Model(m) = &file.items[0] else { panic!() };
    assert_eq!(m.stmts.len(), 2);
}

#[test]
fn statements_may_share_a_line() {
    let file = parse_ok(
        "model m { dim d = 4 dim k = 3 input x : fixed[d] in [0, 1] z = f(x, n = 1) w = z loss = sum(w) }\n\
         train m { optimizer = sgd(lr = 0.1) batch = 2 format z = fixed<8, 2> range z in [0, 1] }",
    );
    let Item::Model(m) = &file.items[0] else { panic!() };
    assert_eq!(m.stmts.len(), 6);
    let Item::Train(t) = &file.items[1] else { panic!() };
    assert_eq!(t.items.len(), 4);
}

#[test]
fn numbers() {
    assert_eq!(let_sexpr("1e-3"), "1e-3");
    let file = parse_ok("model m { v = 1.2.3 + 0x }");
    let Item::Model(m) = &file.items[0] else { panic!() };
    let Stmt::Let { value, .. } = &m.stmts[0] else { panic!() };
    let ExprKind::Binary { lhs, rhs, .. } = &value.kind else { panic!() };
    assert!(matches!(&lhs.kind, ExprKind::Number { text, value: None } if text == "1.2.3"));
    assert!(matches!(&rhs.kind, ExprKind::Number { text, value: None } if text == "0x"));
}

#[test]
fn recovery_reports_several_errors_and_keeps_the_rest() {
    let src = "model m {\n  z = W @ @ x\n  input x : fixed[3] in [0, 1]\n  h = relu(z +)\n  loss = sum(h)\n}\n";
    let (file, errors) = parse(src);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors.iter().all(|e| e.kind == ParseErrorKind::Syntax));
    assert!(errors[0].message.contains("unexpected `@`"), "{}", errors[0].message);
    assert!(errors[1].message.contains("expected an expression"), "{}", errors[1].message);
    let Item::Model(m) = &file.items[0] else { panic!() };
    assert_eq!(m.stmts.len(), 4);
    // A broken right-hand side keeps the binding, with an `Error` value.
    assert!(matches!(&m.stmts[0], Stmt::Let { name, value, .. } if name.name == "z" && value.kind == ExprKind::Error));
    assert!(matches!(m.stmts[1], Stmt::Input { .. }));
    assert!(matches!(&m.stmts[2], Stmt::Let { value, .. } if value.kind == ExprKind::Error));
    assert!(matches!(m.stmts[3], Stmt::Let { .. }));
}

#[test]
fn unrecognisable_lines_become_error_statements() {
    let (file, errors) = parse("model m {\n  input x fixed[3]\n  y = 1\n}\nmodel 3\n");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let Item::Model(m) = &file.items[0] else { panic!() };
    assert!(matches!(&m.stmts[..], [Stmt::Error(_), Stmt::Let { .. }]));
    assert!(matches!(file.items[1], Item::Error(_)));
}

#[test]
fn delimiters() {
    let (file, errors) = parse("model m {\n  z = f(x\n  loss = sum(z)\n}\n");
    // The next line starts a statement, so the `(` is closed at the line break: one
    // error, at the opener, and both statements survive.
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, ParseErrorKind::Unclosed);
    let Item::Model(m) = &file.items[0] else { panic!() };
    assert!(matches!(&m.stmts[..], [Stmt::Let { .. }, Stmt::Let { .. }]));

    let (_, errors) = parse("model m { z = x) }");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, ParseErrorKind::Unmatched);

    let (_, errors) = parse("model m {");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, ParseErrorKind::Unclosed);
}

#[test]
fn unexpected_characters_are_merged_and_skipped() {
    let (file, errors) = parse("model m { z = x $$ + 1 }");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, ParseErrorKind::UnexpectedChar);
    assert_eq!((errors[0].span.start, errors[0].span.end), (16, 18));
    assert!(matches!(&file.items[0], Item::Model(_)));
}

#[test]
fn limits() {
    let deep = format!("model m {{ z = {}x{} }}", "(".repeat(10_000), ")".repeat(10_000));
    let (file, errors) = parse(&deep);
    assert!(matches!(&file.items[..], [Item::Error(_)]));
    assert_eq!(errors[0].kind, ParseErrorKind::TooDeep);

    let long = format!("model m {{ z = x{} }}", " + x".repeat(100_000));
    let (_, errors) = parse(&long);
    assert_eq!(errors[0].kind, ParseErrorKind::TooDeep);

    let negs = format!("model m {{ z = {}x }}", "-".repeat(100_000));
    let (_, errors) = parse(&negs);
    assert_eq!(errors[0].kind, ParseErrorKind::TooDeep);

    // Just below the limits is fine.
    let ok = format!("model m {{ z = {}x{} }}", "(".repeat(200), ")".repeat(200));
    parse_ok(&ok);
}

#[test]
fn empty_and_comment_only() {
    assert!(parse_ok("").items.is_empty());
    assert!(parse_ok("# nothing\n// here\n\n").items.is_empty());
}
