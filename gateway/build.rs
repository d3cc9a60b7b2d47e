//! `sqlx::migrate!` embeds the migrations at compile time; a migration added or changed must
//! rebuild the crate (cargo does not watch the folder by itself).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
