//! What a token or invite lets its holder do in a room (see `access` for the rules).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Host,
    Publisher,
    Subscriber,
    Viewer,
    Ops,
}
