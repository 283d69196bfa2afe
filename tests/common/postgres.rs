//! A real PostgreSQL server for the tests: the lab's ([`mbms_lab::postgres`]: `initdb` on a
//! temporary directory, `pg_ctl start` on a free loopback port, SCRAM passwords), shared with
//! `mbms-lab bench cluster`. Without PostgreSQL the tests skip, or fail under
//! `MBMS_REQUIRE_ORACLES=1`.

#[allow(unused_imports)] // each test binary uses what it needs
pub use mbms_lab::postgres::{PASSWORD, PgServer};
