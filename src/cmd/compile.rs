//! `blindtuner compile FILE --emit ast|graph|plan|dot [--stop-after PASS]`.

use super::{load_spec, write_output, Source};
use crate::cli::{CompileArgs, Emit};
use crate::error::CliError;
use blindtuner_compiler::{ir, pipeline};
use std::collections::BTreeMap;

pub fn run(args: &CompileArgs) -> Result<(), CliError> {
    if args.emit == Emit::Ast {
        // The AST is printed even when the checker would reject the spec: it is a
        // debugging view of what the parser understood.
        let src = Source::read(&args.spec.file)?;
        let (ast, _errors) = blindtuner_grammar::parse(&src.text);
        let json = serde_json::to_string_pretty(&ast).map_err(|e| CliError::user(e.to_string()))?;
        return write_output(args.output.as_deref(), &(json + "\n"));
    }
    let (src, spec) = load_spec(&args.spec, &BTreeMap::new())?;
    let ctx = pipeline::run_with(spec, args.stop_after.as_deref(), args.spec.lowering.iter().cloned().collect())
        .map_err(|d| src.diagnostics(d))?;
    src.warn(&ctx.notes);
    let text = match args.emit {
        Emit::Ast => unreachable!("handled above"),
        Emit::Graph | Emit::Dot => {
            let graph = ctx
                .train
                .as_ref()
                .map(|t| &t.graph)
                .or(ctx.forward.as_ref().map(|f| &f.graph))
                .ok_or_else(|| CliError::user("no graph yet: stop after `build` or a later pass"))?;
            if args.emit == Emit::Graph {
                ir::print::print(graph, Some(&src.text))
            } else {
                ir::dot::dot(graph)
            }
        }
        Emit::Plan => {
            let plan = ctx.plan.as_ref().ok_or_else(|| {
                CliError::user(
                    "no plan yet: the plan exists after the `lower` pass (remove --stop-after or stop later)",
                )
            })?;
            serde_json::to_string_pretty(plan).map_err(|e| CliError::user(e.to_string()))? + "\n"
        }
    };
    write_output(args.output.as_deref(), &text)
}
