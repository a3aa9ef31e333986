//! A shared library without `sheaf_plugin_entry`: the loader must refuse it by name.

/// Some exported function, so the library is not empty.
#[unsafe(no_mangle)]
pub extern "C" fn not_a_sheaf_plugin() -> i32 {
    42
}
