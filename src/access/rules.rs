//! The rules a collection or a bucket declares: who may do what, and the fields the policy
//! reads (owner, hidden). The policy decides with them; the data and files layers store them.

use serde::{Deserialize, Serialize};

/// Who may perform one action on a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Anyone, including anonymous callers.
    Public,
    /// Any signed-in user.
    Authenticated,
    /// The user named in the document's owner field.
    Owner,
    /// Users holding at least one of these roles.
    Roles(Vec<String>),
    /// Only administrators (secret keys and the embedding program). The default: a new
    /// collection is closed until its rules open it.
    #[default]
    Admin,
}

/// The rule for each action on a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Listing, counting and aggregating documents.
    pub list: Rule,
    /// Reading one document by id.
    pub view: Rule,
    /// Creating documents.
    pub create: Rule,
    /// Replacing or patching documents.
    pub update: Rule,
    /// Deleting documents.
    pub delete: Rule,
}

/// What the policy reads of a collection's or a bucket's spec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Guard<'a> {
    /// Who may do what.
    pub(crate) rules: &'a Rules,
    /// The field naming a record's owner, if records have owners.
    pub(crate) owner_field: Option<&'a str>,
    /// Fields never shown to non-administrators.
    pub(crate) hidden_fields: &'a [String],
}
