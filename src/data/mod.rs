//! The data layer: collections, documents, indexes, queries and typed JSON values.

pub(crate) mod collections;
pub(crate) mod documents;
pub(crate) mod feed;
pub(crate) mod index;
pub(crate) mod query;
pub(crate) mod values;
