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

/// The usual shapes of rules, ready-made. Owner rules need the collection's owner field
/// ([`CollectionSpec::owner_field`](crate::CollectionSpec::owner_field)), which a create fills in
/// from the caller.
///
/// ```
/// use larder::{CollectionSpec, Db, Rules};
/// # fn main() -> larder::Result<()> {
/// let db = Db::in_memory()?;
/// db.collections().create(
///     "notes",
///     CollectionSpec::new().rules(Rules::owner_only()).owner_field("owner"),
/// )?;
/// db.collections().create(
///     "posts",
///     CollectionSpec::new().rules(Rules::public_read_owner_write()).owner_field("author"),
/// )?;
/// # Ok(()) }
/// ```
impl Rules {
    /// Only administrators, for everything: what a new collection starts with.
    pub fn admin_only() -> Rules {
        Rules::default()
    }

    /// Any signed-in user may create; each user lists, reads, changes and deletes only their
    /// own documents.
    pub fn owner_only() -> Rules {
        Rules {
            list: Rule::Owner,
            view: Rule::Owner,
            create: Rule::Authenticated,
            update: Rule::Owner,
            delete: Rule::Owner,
        }
    }

    /// Anyone may list and read; signed-in users create; only a document's owner changes or
    /// deletes it (a blog, a public profile page).
    pub fn public_read_owner_write() -> Rules {
        Rules {
            list: Rule::Public,
            view: Rule::Public,
            create: Rule::Authenticated,
            update: Rule::Owner,
            delete: Rule::Owner,
        }
    }

    /// Anyone may list and read; only administrators write (a catalogue, published content).
    pub fn public_read() -> Rules {
        Rules {
            list: Rule::Public,
            view: Rule::Public,
            ..Rules::default()
        }
    }

    /// Any signed-in user may do anything (a shared team space).
    pub fn signed_in() -> Rules {
        Rules {
            list: Rule::Authenticated,
            view: Rule::Authenticated,
            create: Rule::Authenticated,
            update: Rule::Authenticated,
            delete: Rule::Authenticated,
        }
    }
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
