/*
 * The SQLite side of the I/O fault seam (util/iofault.h): when a hardening
 * test has enabled the seam, memchat.db is opened through a shim over
 * SQLite's "unix" VFS, so the faults the test arms reach the data file's
 * own opens, writes, syncs, truncations and deletions, and the test can
 * prove that SQLite's journal keeps the file whole. Without the seam
 * enabled nothing is installed and SQLite's I/O is its own.
 */
#ifndef MEMCHAT_STORE_FAULTVFS_H
#define MEMCHAT_STORE_FAULTVFS_H

/* Installs the shim once per process when iofault_enabled(), before the
 * first connection opens. Returns the VFS name to give sqlite3_open_v2, or
 * NULL for SQLite's default (the seam is off, or SQLite has no "unix"
 * VFS to wrap). Thread-safe. */
const char *faultvfs_install(void);

#endif
