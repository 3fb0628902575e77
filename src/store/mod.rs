//! The store layer: the redb file, its tables and record layouts, the one write path with group
//! commit, ids and the clock. It knows nothing of the layers above it.

pub(crate) mod clock;
pub(crate) mod group_commit;
pub(crate) mod ids;
pub(crate) mod schema;
