//! Hiding `_*` and `.*` files from listings, as Hadoop's `FileInputFormat` does (its
//! `hiddenFileFilter`): a table directory's `_SUCCESS` marker and the `_temporary/` of a write in
//! progress are never read as data, nor taken for a partition of a Hive-partitioned table.
//!
//! Only listings below the asked prefix are filtered; reads, writes and renames of a named path
//! (the committer's own moves out of `_temporary/`) pass through unchanged.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use std::fmt;
use std::ops::Range;

/// An [`ObjectStore`] whose listings leave out hidden files and directories.
#[derive(Debug)]
pub struct HiddenFilesStore<S> {
    inner: S,
}

impl<S> HiddenFilesStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        HiddenFilesStore { inner }
    }
}

impl<S: fmt::Display> fmt::Display for HiddenFilesStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// True if a path segment below `prefix` starts with `_` or `.`.
pub fn is_hidden(prefix: Option<&Path>, location: &Path) -> bool {
    let full = location.as_ref();
    let rest = match prefix.map(|p| p.as_ref()).filter(|p| !p.is_empty()) {
        Some(p) => full.strip_prefix(p).unwrap_or(full),
        None => full,
    };
    rest.split('/')
        .filter(|s| !s.is_empty())
        .any(|s| s.starts_with('_') || s.starts_with('.'))
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for HiddenFilesStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let owned = prefix.cloned();
        self.inner
            .list(prefix)
            .filter(move |item| {
                let keep = match item {
                    Ok(meta) => !is_hidden(owned.as_ref(), &meta.location),
                    Err(_) => true,
                };
                futures::future::ready(keep)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects.retain(|m| !is_hidden(prefix, &m.location));
        listed.common_prefixes.retain(|p| !is_hidden(prefix, p));
        Ok(listed)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_underscore_and_dot_segments_below_the_prefix_only() {
        let p = |s: &str| Path::from(s);
        let table = p("warehouse/t");
        assert!(is_hidden(Some(&table), &p("warehouse/t/_SUCCESS")));
        assert!(is_hidden(
            Some(&table),
            &p("warehouse/t/_temporary/q/part-0.parquet")
        ));
        assert!(is_hidden(Some(&table), &p("warehouse/t/.part-0.crc")));
        assert!(!is_hidden(
            Some(&table),
            &p("warehouse/t/region=east/part-0.parquet")
        ));
        // A prefix that is itself under `_temporary` (the committer listing its own files).
        let staging = p("out/_temporary/q1");
        assert!(!is_hidden(
            Some(&staging),
            &p("out/_temporary/q1/region=a/f.parquet")
        ));
    }
}
