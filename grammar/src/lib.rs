//! Front end of the blindtuner language: lexer, parser, AST.
pub mod ast;
