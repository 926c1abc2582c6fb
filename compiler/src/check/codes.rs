//! Stable diagnostic codes of the front end. Never renumber: users and tests refer
//! to them. `E` codes are errors (no spec is produced), `W` codes warnings.

/// The token sequence does not fit the grammar.
pub const SYNTAX: &str = "E0001";
/// A character that starts no token.
pub const UNEXPECTED_CHAR: &str = "E0002";
/// An opening delimiter that is never closed.
pub const UNCLOSED_DELIMITER: &str = "E0003";
/// A closing delimiter without an opener.
pub const UNMATCHED_DELIMITER: &str = "E0004";
/// Nesting or expression size beyond the parser's limits.
pub const TOO_COMPLEX: &str = "E0005";
/// A numeric literal that is not a number (`1.2.3`, `0x`).
pub const BAD_NUMBER: &str = "E0010";
/// The file contains no `model`.
pub const NO_MODEL: &str = "E0011";
/// A `train` block names a model that does not exist.
pub const TRAIN_UNKNOWN_MODEL: &str = "E0012";
/// The same name is defined twice in one scope.
pub const DUPLICATE: &str = "E0014";
/// A name that is not defined (or not yet defined) where it is used.
pub const UNDEFINED: &str = "E0015";
/// Elementwise operands with different shapes.
pub const SHAPE_MISMATCH: &str = "E0016";
/// `@` with operands that do not multiply.
pub const MATMUL_MISMATCH: &str = "E0017";
/// The model has no `loss` binding.
pub const MISSING_LOSS: &str = "E0018";
/// `loss` is not a scalar.
pub const LOSS_NOT_SCALAR: &str = "E0019";
/// A loss function's operands do not fit (label operand, class count).
pub const LOSS_LABEL: &str = "E0020";
/// An input without a declared value range.
pub const INPUT_WITHOUT_RANGE: &str = "E0021";
/// A range whose low end is not below its high end.
pub const EMPTY_RANGE: &str = "E0022";
/// `optimizer = ` something that is not an optimizer.
pub const UNKNOWN_OPTIMIZER: &str = "E0023";
/// An option the optimizer does not have.
pub const UNKNOWN_OPTIMIZER_OPTION: &str = "E0024";
/// An optimizer without a learning rate.
pub const MISSING_LR: &str = "E0025";
/// A `train` setting that does not exist.
pub const UNKNOWN_SETTING: &str = "E0026";
/// A value out of its allowed range (`batch = 0`, `p_fail = 1`, overflow).
pub const BAD_VALUE: &str = "E0027";
/// A call of a function that does not exist.
pub const UNKNOWN_FUNCTION: &str = "E0028";
/// A call with the wrong number (or kind) of arguments.
pub const ARG_COUNT: &str = "E0029";
/// A tensor type that is not allowed here (`onehot` input, `float[3]`, ...).
pub const BAD_TYPE: &str = "E0030";
/// `--set name=value` for a dimension no model declares.
pub const UNKNOWN_OVERRIDE: &str = "E0031";
/// A tensor with more elements than the compiler accepts.
pub const TOO_LARGE: &str = "E0032";
/// An expression that must be constant is not.
pub const NOT_CONSTANT: &str = "E0033";
/// A parameter initialiser that is not one of the known ones.
pub const BAD_INIT: &str = "E0034";
/// A malformed fixed-point format pin.
pub const BAD_FORMAT: &str = "E0035";
/// A label used outside the label operand of a loss.
pub const LABEL_OUTSIDE_LOSS: &str = "E0036";
/// A user function that calls itself.
pub const RECURSIVE_FUNCTION: &str = "E0038";
/// A construct that is valid syntax but not allowed in this position.
pub const NOT_ALLOWED_HERE: &str = "E0039";

/// A parameter no expression uses: it would never change during training.
pub const UNUSED_PARAM: &str = "W0001";
/// A binding no expression uses.
pub const UNUSED_LET: &str = "W0002";
/// No `train` block: defaults are used.
pub const NO_TRAIN_BLOCK: &str = "W0003";
/// Several models in one file: only one is compiled.
pub const SEVERAL_MODELS: &str = "W0004";
/// An input no expression uses.
pub const UNUSED_INPUT: &str = "W0005";
