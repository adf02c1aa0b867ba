/*
 * The keystore file (see keystore.h). Format version 2, one compact JSON
 * document:
 *
 *   {"magic":"memchat-keystore","version":2,
 *    "kdf":null | {"alg":"argon2id13","salt":B64,"opslimit":N,"memlimit":N},
 *    "check":B64(nonce[24] || tag[16]),
 *    "tool_check":null | B64(nonce[24] || tag[16]),
 *    "records":[{"tenant":ID,"provider":P,"key_id":ID,"sealed":"master"|"tool",
 *                "nonce":B64(24 bytes),"ct":B64(ciphertext || tag)}, ...]}
 *
 * B64 is standard padded base64, decoded strictly (no stray characters, no
 * non-zero padding bits), so every flipped bit of the file changes what is
 * read. "check" is XChaCha20-Poly1305 of the empty message whose associated
 * data is the header (version and KDF parameters): it fails exactly when
 * the master key is wrong or the header was altered, so neither reaches the
 * records. "tool_check" is the same under the tool key, with associated
 * data "memchat-keystore/2/tool-check": present exactly when some record
 * is sealed with the tool key, it tells a wrong tool key
 * (TOOL_CREDENTIALS_ENCRYPTION_KEY) apart from a damaged record. "sealed"
 * says which key sealed a record ("tool" only for a provider "tool:NAME",
 * so a provider key cannot be relabelled out of the check at open). Each record's associated data
 * is "memchat-keystore/2/record", sealed, tenant, provider and key_id,
 * NUL-separated (none may contain a NUL), so neither moving a record to
 * another slot nor flipping its "sealed" lets it decrypt.
 *
 * Every member is required and no other is accepted. Every master-sealed
 * record is verified at open, every tool-sealed one when the tool key is
 * given, so a damaged file is refused as a whole, never overwritten. A
 * process without the tool key cannot open tool-sealed records and copies
 * them as they are when it saves (with their tool_check).
 *
 * Version 1 (memchat before tool keys) had no "tool_check" and no "sealed",
 * and bound "memchat-keystore/1/..." as associated data: its records are
 * all master-sealed. It is still read (and its records re-sealed in memory
 * under the version 2 associated data); saving writes version 2.
 * Secrets live decrypted only in sodium_malloc'd memory.
 */
#include "config.h"

#include "store/keystore.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sodium.h>

#include "util/alloc.h"
#include "util/fileio.h"
#include "util/ident.h"
#include "util/json.h"

#define KS_MAGIC    "memchat-keystore"
#define KS_VERSION  2 /* written; 1 is still read */
#define KS_V1       1
#define KS_NONCE    crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define KS_TAG      crypto_aead_xchacha20poly1305_ietf_ABYTES
#define KS_ALG_NAME "argon2id13"
#define KS_AD_MAX   256

_Static_assert(KEYSTORE_SALT_BYTES == crypto_pwhash_SALTBYTES, "salt size");
_Static_assert(KEYSTORE_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(KS_NONCE == 24 && KS_TAG == 16, "xchacha20poly1305 sizes");

#define KS_CHECK_BYTES   (KS_NONCE + KS_TAG)
#define KS_TOOL_CHECK_AD "memchat-keystore/2/tool-check"

struct ks_record {
    char *tenant;
    char *provider;
    char *key_id;
    enum keystore_seal sealed;
    uint8_t nonce[KS_NONCE];
    uint8_t *ct; /* ciphertext || tag; not secret */
    size_t ct_len;
};

struct keystore {
    char *path;
    uint8_t *master; /* sodium_malloc'd, KEYSTORE_KEY_BYTES */
    bool has_kdf;
    struct keystore_kdf kdf;
    /* The tool key: sodium_malloc'd, or NULL when none was given or the one
     * given is wrong (tool_state says which). */
    uint8_t *tool_key;
    enum keystore_tool_key tool_state;
    /* The tool check value: exactly when some record is tool-sealed. Made
     * when the first record is sealed with the tool key, copied otherwise. */
    bool has_tool_check;
    uint8_t tool_check[KS_CHECK_BYTES];
    struct ks_record *recs; /* sorted by (tenant, provider, key_id) */
    size_t n, cap;
};

static const char *seal_name(enum keystore_seal s)
{
    return s == KEYSTORE_SEAL_TOOL ? "tool" : "master";
}

/* A tool credential's provider: "tool:" and a tool name. */
static bool is_tool_provider(const char *p)
{
    return strncmp(p, KEYSTORE_TOOL_PREFIX, strlen(KEYSTORE_TOOL_PREFIX)) == 0;
}

/* [a-z0-9:_-]{1,64} (a model provider), or "tool:" and a tool name, which
 * may hold capitals ([A-Za-z0-9_-]{1,64}, as tools/registry.h accepts). */
static bool provider_valid(const char *s)
{
    if (is_tool_provider(s))
        return ident_valid(s + strlen(KEYSTORE_TOOL_PREFIX));
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '_' || c == '-';
        if (!ok || n >= 64)
            return false;
    }
    return n > 0;
}

/* Checks the three names of a slot; the message names the bad field. */
static int check_slot(const char *tenant, const char *provider, const char *key_id, char *err,
                      size_t errlen)
{
    if (tenant == NULL || !ident_valid(tenant)) {
        snprintf(err, errlen, "invalid tenant \"%.64s\" (accepted: [A-Za-z0-9_-]{1,64})",
                 tenant ? tenant : "");
        return -1;
    }
    if (provider == NULL || !provider_valid(provider)) {
        snprintf(err, errlen,
                 "invalid provider \"%.72s\" (accepted: [a-z0-9:_-]{1,64}, or tool:NAME with "
                 "NAME of [A-Za-z0-9_-]{1,64})",
                 provider ? provider : "");
        return -1;
    }
    if (key_id == NULL || !ident_valid(key_id)) {
        snprintf(err, errlen, "invalid key id \"%.64s\" (accepted: [A-Za-z0-9_-]{1,64})",
                 key_id ? key_id : "");
        return -1;
    }
    return 0;
}

/* The associated data of a record in a file of version: binds it to its
 * slot and (version 2) to the key that sealed it. */
static size_t record_ad(uint8_t *ad, int version, const struct ks_record *r)
{
    int n;
    if (version == KS_V1)
        n = snprintf((char *)ad, KS_AD_MAX, "memchat-keystore/%d/record%c%s%c%s%c%s", KS_V1, '\0',
                     r->tenant, '\0', r->provider, '\0', r->key_id);
    else
        n = snprintf((char *)ad, KS_AD_MAX, "memchat-keystore/%d/record%c%s%c%s%c%s%c%s",
                     KS_VERSION, '\0', seal_name(r->sealed), '\0', r->tenant, '\0', r->provider,
                     '\0', r->key_id);
    /* Names are bounded (64 + 69 + 64), so n < KS_AD_MAX. */
    return (size_t)n;
}

/* The associated data of the check value: binds the header to the key. */
static size_t header_ad(uint8_t *ad, int version, bool has_kdf, const struct keystore_kdf *kdf)
{
    int n;
    if (!has_kdf) {
        n = snprintf((char *)ad, KS_AD_MAX, "memchat-keystore/%d/check/kdf=none", version);
    } else {
        char salt[2 * KEYSTORE_SALT_BYTES + 1];
        sodium_bin2hex(salt, sizeof salt, kdf->salt, sizeof kdf->salt);
        n = snprintf((char *)ad, KS_AD_MAX, "memchat-keystore/%d/check/kdf=%s/%s/%llu/%zu", version,
                     KS_ALG_NAME, salt, kdf->opslimit, kdf->memlimit);
    }
    return (size_t)n;
}

/* Fills check with a fresh check value of the empty message under key. */
static void check_make(uint8_t check[KS_CHECK_BYTES], const uint8_t *ad, size_t adlen,
                       const uint8_t *key)
{
    randombytes_buf(check, KS_NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(check + KS_NONCE, NULL, NULL, 0, ad, adlen, NULL,
                                               check, key);
}

/* True when check is a check value of ad under key. */
static bool check_ok(const uint8_t check[KS_CHECK_BYTES], const uint8_t *ad, size_t adlen,
                     const uint8_t *key)
{
    return crypto_aead_xchacha20poly1305_ietf_decrypt(NULL, NULL, NULL, check + KS_NONCE, KS_TAG,
                                                      ad, adlen, check, key) == 0;
}

static void tool_check_make(struct keystore *ks)
{
    check_make(ks->tool_check, (const uint8_t *)KS_TOOL_CHECK_AD, strlen(KS_TOOL_CHECK_AD),
               ks->tool_key);
    ks->has_tool_check = true;
}

static int slot_cmp(const struct ks_record *r, const char *tenant, const char *provider,
                    const char *key_id)
{
    int c = strcmp(r->tenant, tenant);
    if (c == 0)
        c = strcmp(r->provider, provider);
    if (c == 0)
        c = strcmp(r->key_id, key_id);
    return c;
}

/* Index of the slot, or of where it would go (*found false). */
static size_t find_slot(const struct keystore *ks, const char *tenant, const char *provider,
                        const char *key_id, bool *found)
{
    size_t lo = 0, hi = ks->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = slot_cmp(&ks->recs[mid], tenant, provider, key_id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void record_fini(struct ks_record *r)
{
    xfree(r->tenant);
    xfree(r->provider);
    xfree(r->key_id);
    xfree(r->ct);
}

/* Seals secret into r's nonce and ct under key, for r's slot and r->sealed
 * (set by the caller to the key's kind). */
static void record_seal(struct ks_record *r, const uint8_t *key, const uint8_t *secret, size_t len)
{
    uint8_t ad[KS_AD_MAX];
    size_t adlen = record_ad(ad, KS_VERSION, r);
    randombytes_buf(r->nonce, sizeof r->nonce);
    uint8_t *ct = xmalloc(len + KS_TAG);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, secret, len, ad, adlen, NULL, r->nonce,
                                               key);
    xfree(r->ct);
    r->ct = ct;
    r->ct_len = (size_t)clen;
}

/* Opens r, as sealed in a file of version, under key into a
 * sodium_malloc'd NUL-terminated buffer. */
static int record_open_v(const struct ks_record *r, int version, const uint8_t *key, char **out,
                         size_t *len)
{
    *out = NULL;
    if (r->ct_len < KS_TAG)
        return -1;
    size_t plen = r->ct_len - KS_TAG;
    char *p = sodium_malloc(plen + 1);
    if (p == NULL)
        return -1;
    uint8_t ad[KS_AD_MAX];
    size_t adlen = record_ad(ad, version, r);
    unsigned long long got = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)p, &got, NULL, r->ct, r->ct_len, ad,
                                                   adlen, r->nonce, key) != 0) {
        sodium_free(p);
        return -1;
    }
    p[plen] = '\0';
    *out = p;
    if (len != NULL)
        *len = (size_t)got;
    return 0;
}

static int record_open(const struct ks_record *r, const uint8_t *key, char **out, size_t *len)
{
    return record_open_v(r, KS_VERSION, key, out, len);
}

/* The key that opens r here: the master key, the tool key, or NULL when r
 * is tool-sealed and the tool key is missing or wrong. */
static const uint8_t *record_key(const struct keystore *ks, const struct ks_record *r)
{
    return r->sealed == KEYSTORE_SEAL_TOOL ? ks->tool_key : ks->master;
}

/* Why a tool-sealed record cannot be opened here (record_key is NULL). */
static void tool_locked_msg(const struct keystore *ks, const struct ks_record *r, char *err,
                            size_t errlen)
{
    if (ks->tool_state == KEYSTORE_TOOL_KEY_WRONG)
        snprintf(err, errlen,
                 "keystore %s: " KEYSTORE_TOOL_KEY_NAME " does not open the tool credential "
                 "%s/%s/%s (it was sealed under another key)",
                 ks->path, r->tenant, r->provider, r->key_id);
    else
        snprintf(err, errlen,
                 "keystore %s: the tool credential %s/%s/%s is sealed under " KEYSTORE_TOOL_KEY_NAME
                 ", which is not set: set it to the key the credential was stored with",
                 ks->path, r->tenant, r->provider, r->key_id);
}

void keystore_secret_free(char *secret)
{
    if (secret != NULL)
        sodium_free(secret); /* wipes before unmapping */
}

int keystore_kdf_init(struct keystore_kdf *kdf, unsigned long long opslimit, size_t memlimit,
                      char *err, size_t errlen)
{
    if (opslimit == 0)
        opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
    if (memlimit == 0)
        memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    if (opslimit < crypto_pwhash_OPSLIMIT_MIN || opslimit > crypto_pwhash_OPSLIMIT_MAX ||
        memlimit < crypto_pwhash_MEMLIMIT_MIN || memlimit > crypto_pwhash_MEMLIMIT_MAX) {
        snprintf(err, errlen, "key derivation limits out of range (opslimit %llu, memlimit %zu)",
                 opslimit, memlimit);
        return -1;
    }
    randombytes_buf(kdf->salt, sizeof kdf->salt);
    kdf->opslimit = opslimit;
    kdf->memlimit = memlimit;
    return 0;
}

int keystore_derive_key(const char *pass, size_t len, const struct keystore_kdf *kdf,
                        uint8_t out[KEYSTORE_KEY_BYTES], char *err, size_t errlen)
{
    if (crypto_pwhash(out, KEYSTORE_KEY_BYTES, pass, len, kdf->salt, kdf->opslimit, kdf->memlimit,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        sodium_memzero(out, KEYSTORE_KEY_BYTES);
        snprintf(err, errlen,
                 "cannot derive the master key from the passphrase (out of memory? memlimit "
                 "%zu)",
                 kdf->memlimit);
        return -1;
    }
    return 0;
}

/* --- parsing ----------------------------------------------------------- */

/* Decodes s strictly into out (at most cap bytes; *got set): the text must
 * be exactly what encoding the result gives back, because libsodium 1.0.18
 * silently accepts some bytes with the high bit set. */
int keystore_b64_decode(const char *s, size_t slen, uint8_t *out, size_t cap, size_t *got)
{
    const char *end = NULL;
    *got = 0;
    int rc = -1;
    if (sodium_base642bin(out, cap, s, slen, NULL, got, &end, sodium_base64_VARIANT_ORIGINAL) ==
            0 &&
        end == s + slen &&
        sodium_base64_ENCODED_LEN(*got, sodium_base64_VARIANT_ORIGINAL) == slen + 1) {
        /* libsodium 1.0.18 decodes some bytes with the high bit set as if
         * they were letters; encoding back catches them, and any other
         * second spelling of the same bytes. */
        char *back = xmalloc(slen + 1);
        sodium_bin2base64(back, slen + 1, out, *got, sodium_base64_VARIANT_ORIGINAL);
        rc = sodium_memcmp(back, s, slen) == 0 ? 0 : -1;
        sodium_memzero(back, slen + 1);
        xfree(back);
    }
    if (rc != 0) {
        sodium_memzero(out, cap);
        *got = 0;
    }
    return rc;
}

static int b64_decode(const char *s, uint8_t *out, size_t cap, size_t *got)
{
    return keystore_b64_decode(s, strlen(s), out, cap, got);
}

/* Decodes the base64 string member name of obj into exactly n bytes. */
static int get_b64(const cJSON *obj, const char *name, uint8_t *out, size_t n)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    size_t got = 0;
    if (!cJSON_IsString(it) || it->valuestring == NULL ||
        b64_decode(it->valuestring, out, n, &got) != 0 || got != n)
        return -1;
    return 0;
}

/* True when obj is an object with exactly the listed members (no extra or
 * repeated ones). */
static bool has_exact_members(const cJSON *obj, const char *const *names, size_t n)
{
    if (!cJSON_IsObject(obj) || (size_t)cJSON_GetArraySize(obj) != n)
        return false;
    for (const cJSON *it = obj->child; it != NULL; it = it->next) {
        size_t hits = 0;
        for (size_t i = 0; i < n; i++)
            if (it->string != NULL && strcmp(it->string, names[i]) == 0)
                hits++;
        if (hits != 1)
            return false;
    }
    for (size_t i = 0; i < n; i++) {
        size_t seen = 0;
        for (const cJSON *it = obj->child; it != NULL; it = it->next)
            if (strcmp(it->string, names[i]) == 0)
                seen++;
        if (seen != 1)
            return false;
    }
    return true;
}

/* A positive integer member that a double represents exactly. */
static int get_uint(const cJSON *obj, const char *name, unsigned long long max,
                    unsigned long long *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(it))
        return -1;
    double d = it->valuedouble;
    if (!(d >= 1.0 && d <= 9007199254740992.0) || (double)(unsigned long long)d != d ||
        (unsigned long long)d > max)
        return -1;
    *out = (unsigned long long)d;
    return 0;
}

static int parse_kdf(const cJSON *k, struct keystore_kdf *kdf)
{
    static const char *const names[] = {"alg", "salt", "opslimit", "memlimit"};
    if (!has_exact_members(k, names, 4))
        return -1;
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(k, "alg");
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, KS_ALG_NAME) != 0)
        return -1;
    unsigned long long ops, mem;
    if (get_b64(k, "salt", kdf->salt, sizeof kdf->salt) != 0 ||
        get_uint(k, "opslimit", crypto_pwhash_OPSLIMIT_MAX, &ops) != 0 ||
        get_uint(k, "memlimit", crypto_pwhash_MEMLIMIT_MAX, &mem) != 0 ||
        ops < crypto_pwhash_OPSLIMIT_MIN || mem < crypto_pwhash_MEMLIMIT_MIN)
        return -1;
    kdf->opslimit = ops;
    kdf->memlimit = (size_t)mem;
    return 0;
}

/* The header of a parsed document. */
struct ks_header {
    int version; /* KS_V1 or KS_VERSION */
    bool has_kdf;
    struct keystore_kdf kdf;
    bool has_tool_check;
    uint8_t tool_check[KS_CHECK_BYTES];
};

/* Checks the members of a document of h->version and reads its KDF and
 * tool check. NULL, or why it is refused. */
static const char *parse_header(const cJSON *d, struct ks_header *h)
{
    static const char *const v1[] = {"magic", "version", "kdf", "check", "records"};
    static const char *const v2[] = {"magic", "version", "kdf", "check", "tool_check", "records"};
    if (h->version == KS_V1 ? !has_exact_members(d, v1, 5) : !has_exact_members(d, v2, 6))
        return "has missing or unknown members";
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(d, "kdf");
    if (cJSON_IsNull(k))
        h->has_kdf = false;
    else if (parse_kdf(k, &h->kdf) == 0)
        h->has_kdf = true;
    else
        return "has a damaged kdf header";
    if (h->version == KS_V1)
        return NULL;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(d, "tool_check");
    h->has_tool_check = !cJSON_IsNull(tc);
    if (h->has_tool_check && get_b64(d, "tool_check", h->tool_check, sizeof h->tool_check) != 0)
        return "has a damaged tool_check";
    return NULL;
}

/* Reads and parses path's header. 0 with *doc; 1 when missing; -1 err;
 * KEYSTORE_ERR_IO when it cannot be read. */
static int load_doc(const char *path, cJSON **doc, struct ks_header *h, char *err, size_t errlen)
{
    *doc = NULL;
    memset(h, 0, sizeof *h);
    char *data = NULL;
    size_t len = 0;
    char ferr[512];
    int rc = fileio_read_all(path, KEYSTORE_MAX_FILE, &data, &len, ferr, sizeof ferr);
    if (rc == -2)
        return 1;
    if (rc != 0) {
        snprintf(err, errlen, "keystore %s: %s", path, ferr);
        return errno == EFBIG ? -1 : KEYSTORE_ERR_IO; /* too large: damaged, not unreadable */
    }
    const char *why = NULL;
    cJSON *d = NULL;
    bool no_memory = false;
    if (strlen(data) != len) {
        why = "contains a NUL byte";
    } else if ((d = json_parse(data, len + 1, NULL, true)) == NULL) {
        no_memory = errno == ENOMEM;
        why = "is not valid JSON (truncated or damaged?)";
    } else {
        const cJSON *magic = cJSON_GetObjectItemCaseSensitive(d, "magic");
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(d, "version");
        if (!cJSON_IsObject(d) || !cJSON_IsString(magic) ||
            strcmp(magic->valuestring, KS_MAGIC) != 0)
            why = "is not a memchat keystore (bad magic)";
        else if (!cJSON_IsNumber(ver) ||
                 (ver->valuedouble != (double)KS_V1 && ver->valuedouble != (double)KS_VERSION))
            why = "has an unsupported version (this memchat reads versions 1 and 2)";
        else
            h->version = ver->valuedouble == (double)KS_V1 ? KS_V1 : KS_VERSION;
        if (why == NULL)
            why = parse_header(d, h);
    }
    sodium_memzero(data, len);
    xfree(data);
    if (no_memory) {
        snprintf(err, errlen, "keystore %s: out of memory reading it", path);
        return KEYSTORE_ERR_IO; /* the file may be sound: not "damaged" */
    }
    if (why != NULL) {
        cJSON_Delete(d);
        snprintf(err, errlen, "keystore %s %s; refusing to use it", path, why);
        return -1;
    }
    *doc = d;
    return 0;
}

/* Inserts rec (taken) at index at of ks->recs. */
static void insert_record(struct keystore *ks, size_t at, const struct ks_record *rec)
{
    if (ks->n == ks->cap) {
        ks->cap = ks->cap ? ks->cap * 2 : 8;
        ks->recs = xreallocarray(ks->recs, ks->cap, sizeof *ks->recs);
    }
    memmove(&ks->recs[at + 1], &ks->recs[at], (ks->n - at) * sizeof *ks->recs);
    ks->recs[at] = *rec;
    ks->n++;
}

/* Reads the "sealed" member of a version 2 record of provider p. */
static const char *parse_sealed(const cJSON *r, const char *p, enum keystore_seal *out)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "sealed");
    if (!cJSON_IsString(s))
        return "a record has an invalid sealed marker";
    if (strcmp(s->valuestring, "master") == 0) {
        *out = KEYSTORE_SEAL_MASTER;
        return NULL;
    }
    if (strcmp(s->valuestring, "tool") != 0)
        return "a record has an invalid sealed marker";
    /* Only a tool credential may be under the tool key: a provider key
     * marked "tool" would otherwise escape verification at open. */
    if (!is_tool_provider(p))
        return "a provider key is marked as sealed with the tool key";
    *out = KEYSTORE_SEAL_TOOL;
    return NULL;
}

/* Verifies a master-sealed record read from a file of version; a version 1
 * record is re-sealed under the version 2 associated data (in memory), so
 * every record in memory is a version 2 one. */
static int verify_master_record(struct keystore *ks, struct ks_record *rec, int version)
{
    char *plain = NULL;
    size_t len = 0;
    if (record_open_v(rec, version, ks->master, &plain, &len) != 0)
        return -1;
    if (version == KS_V1)
        record_seal(rec, ks->master, (const uint8_t *)plain, len);
    keystore_secret_free(plain);
    return 0;
}

/* Parses one record of a file of version into ks. NULL, or why the file is
 * refused. */
static const char *parse_record(struct keystore *ks, const cJSON *r, int version)
{
    static const char *const v1[] = {"tenant", "provider", "key_id", "nonce", "ct"};
    static const char *const v2[] = {"tenant", "provider", "key_id", "sealed", "nonce", "ct"};
    if (version == KS_V1 ? !has_exact_members(r, v1, 5) : !has_exact_members(r, v2, 6))
        return "a record has missing or unknown members";
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "tenant");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "provider");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(r, "key_id");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(r, "ct");
    char e[8];
    if (!cJSON_IsString(t) || !cJSON_IsString(p) || !cJSON_IsString(k) || !cJSON_IsString(ct) ||
        check_slot(t->valuestring, p->valuestring, k->valuestring, e, sizeof e) != 0)
        return "a record has an invalid tenant, provider or key id";
    struct ks_record rec = {0};
    const char *why = version == KS_V1 ? NULL : parse_sealed(r, p->valuestring, &rec.sealed);
    if (why != NULL)
        return why;
    bool found;
    size_t at = find_slot(ks, t->valuestring, p->valuestring, k->valuestring, &found);
    if (found)
        return "two records share a slot";
    size_t b64len = strlen(ct->valuestring);
    size_t maxct = b64len / 4 * 3;
    if (maxct < KS_TAG || maxct > KEYSTORE_MAX_SECRET + KS_TAG + 3)
        return "a record's ciphertext has a bad length";
    rec.ct = xmalloc(maxct);
    if (get_b64(r, "nonce", rec.nonce, sizeof rec.nonce) != 0 ||
        b64_decode(ct->valuestring, rec.ct, maxct, &rec.ct_len) != 0 || rec.ct_len < KS_TAG) {
        xfree(rec.ct);
        return "a record has damaged base64";
    }
    rec.tenant = xstrdup(t->valuestring);
    rec.provider = xstrdup(p->valuestring);
    rec.key_id = xstrdup(k->valuestring);
    /* A tool-sealed record waits for keystore_set_tool_key. */
    if (rec.sealed == KEYSTORE_SEAL_MASTER && verify_master_record(ks, &rec, version) != 0) {
        record_fini(&rec);
        return "a record does not decrypt (damaged, or moved to another slot)";
    }
    insert_record(ks, at, &rec);
    return NULL;
}

static const char *parse_records(struct keystore *ks, const cJSON *arr, int version)
{
    if (!cJSON_IsArray(arr))
        return "records is not an array";
    for (const cJSON *r = arr->child; r != NULL; r = r->next) {
        const char *why = parse_record(ks, r, version);
        if (why != NULL)
            return why;
    }
    /* The tool check exists exactly when some record needs it. */
    bool any_tool = keystore_count_sealed(ks, KEYSTORE_SEAL_TOOL) > 0;
    if (any_tool && !ks->has_tool_check)
        return "tool credentials sealed with the tool key, but no tool_check";
    if (!any_tool && ks->has_tool_check)
        return "a tool_check, but no record sealed with the tool key";
    return NULL;
}

int keystore_kdf_params(const char *path, struct keystore_kdf *kdf, char *err, size_t errlen)
{
    cJSON *doc = NULL;
    struct ks_header h;
    int rc = load_doc(path, &doc, &h, err, errlen);
    cJSON_Delete(doc);
    if (rc != 0)
        return rc;
    if (h.has_kdf)
        *kdf = h.kdf;
    return h.has_kdf ? 0 : 1;
}

/* Checks the header's check value and reads the records of doc into ks. */
static int open_doc(struct keystore *ks, const cJSON *doc, const struct ks_header *h, char *err,
                    size_t errlen)
{
    uint8_t check[KS_CHECK_BYTES], ad[KS_AD_MAX];
    size_t adlen = header_ad(ad, h->version, h->has_kdf, &h->kdf);
    const char *bad = NULL;
    if (get_b64(doc, "check", check, sizeof check) != 0) {
        snprintf(err, errlen, "keystore %s is damaged (bad check value); refusing to use it",
                 ks->path);
        return -1;
    }
    if (!check_ok(check, ad, adlen, ks->master)) {
        snprintf(err, errlen,
                 "keystore %s: the master key does not open this keystore (wrong key, or a "
                 "damaged header)",
                 ks->path);
        return -1;
    }
    ks->has_kdf = h->has_kdf;
    ks->kdf = h->kdf;
    ks->has_tool_check = h->has_tool_check;
    memcpy(ks->tool_check, h->tool_check, sizeof ks->tool_check);
    bad = parse_records(ks, cJSON_GetObjectItemCaseSensitive(doc, "records"), h->version);
    if (bad != NULL) {
        snprintf(err, errlen, "keystore %s is damaged (%s); refusing to use it", ks->path, bad);
        return -1;
    }
    return 0;
}

int keystore_open(const char *path, const uint8_t master[KEYSTORE_KEY_BYTES], struct keystore **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    struct keystore *ks = xcalloc(1, sizeof *ks);
    ks->path = xstrdup(path);
    ks->master = sodium_malloc(KEYSTORE_KEY_BYTES);
    if (ks->master == NULL) {
        snprintf(err, errlen, "keystore %s: cannot allocate locked memory for the key", path);
        keystore_free(ks);
        return -1;
    }
    memcpy(ks->master, master, KEYSTORE_KEY_BYTES);
    cJSON *doc = NULL;
    struct ks_header h;
    int rc = load_doc(path, &doc, &h, err, errlen);
    if (rc == 0)
        rc = open_doc(ks, doc, &h, err, errlen);
    cJSON_Delete(doc);
    if (rc < 0) {
        keystore_free(ks);
        return rc;
    }
    *out = ks; /* rc 1: no file, an empty keystore */
    return 0;
}

void keystore_free(struct keystore *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->n; i++)
        record_fini(&ks->recs[i]);
    xfree(ks->recs);
    if (ks->master != NULL)
        sodium_free(ks->master);
    if (ks->tool_key != NULL)
        sodium_free(ks->tool_key);
    xfree(ks->path);
    xfree(ks);
}

static void tool_key_forget(struct keystore *ks)
{
    if (ks->tool_key != NULL)
        sodium_free(ks->tool_key);
    ks->tool_key = NULL;
    ks->tool_state = KEYSTORE_TOOL_KEY_NONE;
}

int keystore_set_tool_key(struct keystore *ks, const uint8_t *key, char *err, size_t errlen)
{
    tool_key_forget(ks);
    if (key == NULL)
        return 0;
    const uint8_t *ad = (const uint8_t *)KS_TOOL_CHECK_AD;
    if (ks->has_tool_check && !check_ok(ks->tool_check, ad, strlen(KS_TOOL_CHECK_AD), key)) {
        ks->tool_state = KEYSTORE_TOOL_KEY_WRONG;
        snprintf(err, errlen,
                 "keystore %s: " KEYSTORE_TOOL_KEY_NAME " does not open the tool credentials "
                 "sealed in it (they were stored under another key, or its tool_check is "
                 "damaged): set it to that key, or unset it to leave them sealed",
                 ks->path);
        return 1;
    }
    ks->tool_key = sodium_malloc(KEYSTORE_KEY_BYTES);
    if (ks->tool_key == NULL) {
        snprintf(err, errlen, "keystore %s: cannot allocate locked memory for the key", ks->path);
        return -1;
    }
    memcpy(ks->tool_key, key, KEYSTORE_KEY_BYTES);
    ks->tool_state = KEYSTORE_TOOL_KEY_OK;
    for (size_t i = 0; i < ks->n; i++) {
        const struct ks_record *r = &ks->recs[i];
        char *plain = NULL;
        if (r->sealed != KEYSTORE_SEAL_TOOL)
            continue;
        if (record_open(r, ks->tool_key, &plain, NULL) != 0) {
            snprintf(err, errlen,
                     "keystore %s is damaged (the tool credential %s/%s/%s does not decrypt under "
                     "the right " KEYSTORE_TOOL_KEY_NAME "); refusing to use it",
                     ks->path, r->tenant, r->provider, r->key_id);
            tool_key_forget(ks);
            return -1;
        }
        keystore_secret_free(plain);
    }
    return 0;
}

enum keystore_tool_key keystore_tool_key_state(const struct keystore *ks)
{
    return ks->tool_state;
}

/* Keeps the tool check in step with the records after one was replaced or
 * removed: none once no record is tool-sealed (and a tool key said to be
 * wrong then contradicts nothing). */
static void tool_check_sync(struct keystore *ks)
{
    if (keystore_count_sealed(ks, KEYSTORE_SEAL_TOOL) > 0)
        return;
    ks->has_tool_check = false;
    if (ks->tool_state == KEYSTORE_TOOL_KEY_WRONG)
        ks->tool_state = KEYSTORE_TOOL_KEY_NONE;
}

int keystore_set(struct keystore *ks, const char *tenant, const char *provider, const char *key_id,
                 const char *secret, size_t len, char *err, size_t errlen)
{
    if (check_slot(tenant, provider, key_id, err, errlen) != 0)
        return -1;
    if (len > KEYSTORE_MAX_SECRET) {
        snprintf(err, errlen, "secret for %s/%s/%s is too long (%zu bytes; at most %d)", tenant,
                 provider, key_id, len, KEYSTORE_MAX_SECRET);
        return -1;
    }
    bool tool = is_tool_provider(provider);
    if (tool && ks->tool_state == KEYSTORE_TOOL_KEY_WRONG) {
        snprintf(err, errlen,
                 "keystore %s: " KEYSTORE_TOOL_KEY_NAME " does not open the tool credentials "
                 "already sealed in it, so %s/%s/%s is not stored: set it to the key they were "
                 "stored with",
                 ks->path, tenant, provider, key_id);
        return -1;
    }
    bool found;
    size_t at = find_slot(ks, tenant, provider, key_id, &found);
    if (!found) {
        struct ks_record rec = {0};
        rec.tenant = xstrdup(tenant);
        rec.provider = xstrdup(provider);
        rec.key_id = xstrdup(key_id);
        insert_record(ks, at, &rec);
    }
    struct ks_record *r = &ks->recs[at];
    r->sealed = tool && ks->tool_key != NULL ? KEYSTORE_SEAL_TOOL : KEYSTORE_SEAL_MASTER;
    record_seal(r, record_key(ks, r), (const uint8_t *)secret, len);
    if (r->sealed == KEYSTORE_SEAL_TOOL && !ks->has_tool_check)
        tool_check_make(ks);
    tool_check_sync(ks);
    return 0;
}

int keystore_get(const struct keystore *ks, const char *tenant, const char *provider,
                 const char *key_id, char **secret_out, size_t *len, char *err, size_t errlen)
{
    *secret_out = NULL;
    if (check_slot(tenant, provider, key_id, err, errlen) != 0)
        return -1;
    bool found;
    size_t at = find_slot(ks, tenant, provider, key_id, &found);
    if (!found)
        return 1;
    const struct ks_record *r = &ks->recs[at];
    const uint8_t *key = record_key(ks, r);
    if (key == NULL) {
        tool_locked_msg(ks, r, err, errlen);
        return -1;
    }
    if (record_open(r, key, secret_out, len) != 0) {
        snprintf(err, errlen, "keystore %s: the record %s/%s/%s does not decrypt", ks->path, tenant,
                 provider, key_id);
        return -1;
    }
    return 0;
}

int keystore_rm(struct keystore *ks, const char *tenant, const char *provider, const char *key_id)
{
    char e[8];
    if (check_slot(tenant, provider, key_id, e, sizeof e) != 0)
        return 1;
    bool found;
    size_t at = find_slot(ks, tenant, provider, key_id, &found);
    if (!found)
        return 1;
    record_fini(&ks->recs[at]);
    memmove(&ks->recs[at], &ks->recs[at + 1], (ks->n - at - 1) * sizeof *ks->recs);
    ks->n--;
    tool_check_sync(ks);
    return 0;
}

size_t keystore_count(const struct keystore *ks)
{
    return ks->n;
}

size_t keystore_count_sealed(const struct keystore *ks, enum keystore_seal sealed)
{
    size_t n = 0;
    for (size_t i = 0; i < ks->n; i++)
        n += ks->recs[i].sealed == sealed;
    return n;
}

/* "****" and the last 4 characters of plain[0..len) into masked[9] when it
 * is 12 or more bytes whose last 4 are printable, else "****". */
static void mask_secret(const char *plain, size_t len, char masked[9])
{
    memcpy(masked, "****", 5);
    bool printable = len >= 12;
    for (size_t j = len >= 4 ? len - 4 : 0; printable && j < len; j++)
        printable = plain[j] > 0x20 && plain[j] < 0x7f;
    if (printable)
        memcpy(masked + 4, plain + len - 4, 5); /* includes the NUL */
}

int keystore_list(const struct keystore *ks, keystore_list_cb cb, void *ud, char *err,
                  size_t errlen)
{
    for (size_t i = 0; i < ks->n; i++) {
        const struct ks_record *r = &ks->recs[i];
        const uint8_t *key = record_key(ks, r);
        char masked[9] = "";
        if (key != NULL) {
            char *plain = NULL;
            size_t len = 0;
            if (record_open(r, key, &plain, &len) != 0) {
                snprintf(err, errlen, "keystore %s: the record %s/%s/%s does not decrypt", ks->path,
                         r->tenant, r->provider, r->key_id);
                return -1;
            }
            mask_secret(plain, len, masked);
            keystore_secret_free(plain);
        }
        struct keystore_entry e = {
            .tenant = r->tenant,
            .provider = r->provider,
            .key_id = r->key_id,
            .sealed = r->sealed,
            .masked = key != NULL ? masked : NULL,
        };
        int stop = cb(ud, &e);
        sodium_memzero(masked, sizeof masked);
        if (stop)
            break;
    }
    return 0;
}

/* Adds name: base64(p[0..n)) to obj. */
static void add_b64(cJSON *obj, const char *name, const uint8_t *p, size_t n)
{
    size_t blen = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *b = xmalloc(blen);
    sodium_bin2base64(b, blen, p, n, sodium_base64_VARIANT_ORIGINAL);
    cJSON_AddStringToObject(obj, name, b);
    xfree(b);
}

/* The header members of the document: magic to tool_check. */
static void save_header(const struct keystore *ks, cJSON *d)
{
    cJSON_AddStringToObject(d, "magic", KS_MAGIC);
    cJSON_AddNumberToObject(d, "version", KS_VERSION);
    if (ks->has_kdf) {
        cJSON *k = cJSON_AddObjectToObject(d, "kdf");
        cJSON_AddStringToObject(k, "alg", KS_ALG_NAME);
        add_b64(k, "salt", ks->kdf.salt, sizeof ks->kdf.salt);
        cJSON_AddNumberToObject(k, "opslimit", (double)ks->kdf.opslimit);
        cJSON_AddNumberToObject(k, "memlimit", (double)ks->kdf.memlimit);
    } else {
        cJSON_AddNullToObject(d, "kdf");
    }
    uint8_t check[KS_CHECK_BYTES], ad[KS_AD_MAX];
    size_t adlen = header_ad(ad, KS_VERSION, ks->has_kdf, &ks->kdf);
    check_make(check, ad, adlen, ks->master);
    add_b64(d, "check", check, sizeof check);
    if (ks->has_tool_check)
        add_b64(d, "tool_check", ks->tool_check, sizeof ks->tool_check);
    else
        cJSON_AddNullToObject(d, "tool_check");
}

int keystore_save(struct keystore *ks, char *err, size_t errlen)
{
    cJSON *d = cJSON_CreateObject();
    if (d == NULL)
        alloc_die("keystore document");
    save_header(ks, d);
    cJSON *arr = cJSON_AddArrayToObject(d, "records");
    for (size_t i = 0; i < ks->n; i++) {
        const struct ks_record *r = &ks->recs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tenant", r->tenant);
        cJSON_AddStringToObject(o, "provider", r->provider);
        cJSON_AddStringToObject(o, "key_id", r->key_id);
        cJSON_AddStringToObject(o, "sealed", seal_name(r->sealed));
        add_b64(o, "nonce", r->nonce, sizeof r->nonce);
        add_b64(o, "ct", r->ct, r->ct_len);
        cJSON_AddItemToArray(arr, o);
    }
    char *text = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    if (text == NULL)
        alloc_die("keystore text");
    size_t n = strlen(text);
    int rc;
    if (n > KEYSTORE_MAX_FILE) {
        snprintf(err, errlen, "keystore %s: would be %zu bytes, over the limit of %d; not saved",
                 ks->path, n, KEYSTORE_MAX_FILE);
        rc = -1;
    } else {
        rc = fileio_replace(ks->path, text, n, 0600, err, errlen);
    }
    cJSON_free(text);
    return rc;
}

/* Opens every record rotate re-seals into plain[i] (NULL for a tool-sealed
 * record without the tool key: it is kept as it is). */
static int rotate_open_all(const struct keystore *ks, char **plain, size_t *lens, char *err,
                           size_t errlen)
{
    for (size_t i = 0; i < ks->n; i++) {
        const struct ks_record *r = &ks->recs[i];
        const uint8_t *key = record_key(ks, r);
        if (key == NULL)
            continue;
        if (record_open(r, key, &plain[i], &lens[i]) != 0) {
            snprintf(err, errlen, "keystore %s: the record %s/%s/%s does not decrypt", ks->path,
                     r->tenant, r->provider, r->key_id);
            return -1;
        }
    }
    return 0;
}

int keystore_rotate(struct keystore *ks, const uint8_t new_master[KEYSTORE_KEY_BYTES],
                    const struct keystore_kdf *kdf, char *err, size_t errlen)
{
    if (ks->tool_state == KEYSTORE_TOOL_KEY_WRONG) {
        snprintf(err, errlen,
                 "keystore %s: " KEYSTORE_TOOL_KEY_NAME " does not open the tool credentials "
                 "sealed in it: set it to the key they were stored with, or unset it, before "
                 "rotating",
                 ks->path);
        return -1;
    }
    /* Decrypt everything first so a failure leaves ks unchanged. */
    char **plain = xcalloc(ks->n ? ks->n : 1, sizeof *plain);
    size_t *lens = xcalloc(ks->n ? ks->n : 1, sizeof *lens);
    int rc = rotate_open_all(ks, plain, lens, err, errlen);
    if (rc == 0) {
        memcpy(ks->master, new_master, KEYSTORE_KEY_BYTES);
        for (size_t i = 0; i < ks->n; i++) {
            struct ks_record *r = &ks->recs[i];
            if (plain[i] == NULL)
                continue; /* tool-sealed, no tool key: kept as it is */
            bool tool = is_tool_provider(r->provider) && ks->tool_key != NULL;
            r->sealed = tool ? KEYSTORE_SEAL_TOOL : KEYSTORE_SEAL_MASTER;
            record_seal(r, record_key(ks, r), (const uint8_t *)plain[i], lens[i]);
        }
        if (ks->tool_key != NULL && keystore_count_sealed(ks, KEYSTORE_SEAL_TOOL) > 0)
            tool_check_make(ks); /* a fresh nonce too */
        tool_check_sync(ks);
        ks->has_kdf = kdf != NULL;
        if (kdf != NULL)
            ks->kdf = *kdf;
    }
    for (size_t i = 0; i < ks->n; i++)
        keystore_secret_free(plain[i]);
    xfree(plain);
    xfree(lens);
    return rc;
}
