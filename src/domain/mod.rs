//! Parse-don't-validate newtypes and the device-session state machine.

mod codes;
mod email;
pub mod pkce;
mod scopes;
mod session_status;
mod states;
mod text_enum;
mod token;
mod token_name;

pub use codes::{ConfirmationCode, DeviceCode, UserCode, USER_CODE_ALPHABET, USER_CODE_LEN};
pub use email::Email;
pub use scopes::Scopes;
pub use session_status::SessionStatus;
pub use states::{CeremonyPurpose, Confirmation, Flow, Role, StepUpMethod, TokenSource};
pub use token::{PlainToken, TOKEN_BODY_LEN};
pub use token_name::{check_name, is_format_char, NameProblem, TokenName};
