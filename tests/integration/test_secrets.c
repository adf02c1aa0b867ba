/*
 * The secrets canary. memchat is run through every verb, every error path a
 * test can reach and the most verbose log level, holding distinctive canary
 * secrets: global provider keys, tenant keys and a tool credential in the
 * keystore, a key command's output (and its text), the master key (right,
 * wrong and malformed), the Opik key and the keystore passphrase (right and
 * wrong). After every step each canary, and its base64 at every alignment
 * (and the raw bytes of a base64 master key), is looked for in every place
 * a secret could leak to: stdout (text and --json events), stderr, every
 * file under HOME (the data dir with memchat.log, traces/, memchat.db and
 * its -wal, the keystore; the config dir), and every request the loopback
 * server received, where only the header that carries a key to its own
 * server may hold it. The canaries, the places and the steps are tables,
 * so later features (memory, tools) add rows, not code. A self-check plants
 * every form of every canary and proves the scanner finds it.
 *
 * Memory and conversations add a second kind of canary: a credential a
 * user pastes into a chat or a memory. It stays where the user put it and
 * nowhere else: the tenant's conversations and memories (memchat.db and
 * its -wal, which hold them, their FTS index and the pending stores), the
 * body of a request to the model the user sent it to, and the stdout of
 * that tenant's own runs (the offline reply quotes the user's message, a
 * search or an export prints the memories, --json's memory.retrieved and
 * memory.injected carry them: the user's own output channel). Never stderr
 * (diagnostics), memchat.log, traces/ (util/redact.c redacts trace texts),
 * Opik, another tenant's output or requests, or any other file. Its
 * allowances hold from the first step that pastes it (its value is in the
 * step's arguments or stdin, under its tenant) until a `purge` of that
 * tenant, after which it may be nowhere, memchat.db included (the data
 * file deletes securely and purge truncates the WAL). Every allowance must
 * be used at least once, so the steps provably put the canary there.
 */
#include "cli_harness.h"

#include "../server/mockserver.h"

static struct mock *mock;

/* ---- the canaries --------------------------------------------------------
 * Values use [A-Za-z0-9_-] only, so no JSON, URL or shell quoting can
 * disguise one; the base64 master keys add '=' (never escaped). */
#define C_GLOBAL_OPENAI    "sk-CANARY-global-openai-5Qx9"
#define C_GLOBAL_ANTHROPIC "sk-ant-CANARY-global-anthropic-7Hw2"
#define C_TENANT_OPENAI    "sk-CANARY-tenant-openai-3Kd8"
#define C_TENANT_ANTHROPIC "sk-ant-CANARY-tenant-anthropic-9Pz4"
#define C_TOOL             "ghp_CANARY_tool_github_6Mv1"
#define C_CMD_OUT          "sk-CANARY-command-output-2Jr7"
#define C_CMD_TEXT         "tok-CANARY-command-text-8Yb3"
#define C_FAILED_OUT       "sk-CANARY-failed-command-4Tn6"
#define C_MASTER_RAW       "CANARY-master-key-32-bytes-long!"
#define C_MASTER           "Q0FOQVJZLW1hc3Rlci1rZXktMzItYnl0ZXMtbG9uZyE="
#define C_WRONG_MASTER_RAW "CANARY-wrong-master-key-32bytes!"
#define C_WRONG_MASTER     "Q0FOQVJZLXdyb25nLW1hc3Rlci1rZXktMzJieXRlcyE="
#define C_BAD_MASTER       "bad-CANARY-master-key-value-1Qs5"
#define C_OPIK             "opik-CANARY-api-key-6Fe2"
#define C_PASS             "pass-CANARY-phrase-0Lw8"
#define C_WRONG_PASS       "pass-CANARY-wrong-phrase-5Ug3"
#define C_TOOL_CRED        "ghp_CANARY_tools_add_credential_3Wz5"
#define C_TOOL_KEY_RAW     "CANARY-tool-key-is-32-bytes-long"
#define C_TOOL_KEY         "Q0FOQVJZLXRvb2wta2V5LWlzLTMyLWJ5dGVzLWxvbmc="
#define C_WRONG_TOOL_RAW   "CANARY-wrong-tool-key-32-bytes!!"
#define C_WRONG_TOOL_KEY   "Q0FOQVJZLXdyb25nLXRvb2wta2V5LTMyLWJ5dGVzISE="
#define C_BAD_TOOL_KEY     "bad-CANARY-tool-key-value-7Kp3"

/* Credentials a user pastes into tenant T_PASTED's chats and memories, in
 * two shapes util/redact.c recognises (sk- and ghp_ with enough token
 * characters after the prefix), so its copies in traces are redacted. */
#define C_PASTED_KEY   "sk-CANARY-pasted-in-chat-4Rt7"
#define C_PASTED_TOKEN "ghp_CANARY_pasted_github_token_8Kq2"
#define T_PASTED       "mem"
/* The tenant of a run without --tenant (MEMCHAT_TENANT's default). */
#define T_DEFAULT "default"

/* The key commands: the output is built by printf, so the command's text
 * does not hold it, and the text carries a token of its own. */
#define CMD_OK     "printf 'sk-CANARY-command-output-%s' 2Jr7 # " C_CMD_TEXT
#define CMD_FAILED "printf 'sk-CANARY-failed-command-%s' 4Tn6; exit 3"

#define ROUTE_OPENAI    "/v1/chat/completions"
#define ROUTE_ANTHROPIC "/v1/messages"
#define ROUTE_OPIK      "/v1/private/"

/* A secret memchat holds during the run, or a credential a user pasted. */
struct canary {
    const char *name;   /* what it is, for messages */
    const char *value;  /* as memchat receives it */
    const char *raw;    /* value's decoded bytes when value is base64, else NULL */
    const char *route;  /* the only server path it may be sent to (NULL: none) */
    const char *header; /* in this request header only */
    bool must_send;     /* the scenario sends it there (the check's positive control) */
    /* User content: where a pasted credential may stay (see the top). */
    const char *tenant;         /* whose chats and memories hold it (NULL: not user content) */
    const char *files[3];       /* data-dir files that store them (NULL-terminated) */
    const char *body_routes[3]; /* paths of the models whose request bodies may carry it */
    bool own_stdout;            /* its tenant's runs may print it on stdout */
};

#define SECRET(name_, value_, raw_, route_, header_, send_)                              \
    {                                                                                    \
        .name = name_, .value = value_, .raw = raw_, .route = route_, .header = header_, \
        .must_send = send_                                                               \
    }
#define PASTED(name_, value_, tenant_)                                           \
    {                                                                            \
        .name = name_, .value = value_, .tenant = tenant_,                       \
        .files = {"memchat.db", "memchat.db-wal", NULL},                         \
        .body_routes = {ROUTE_OPENAI, ROUTE_ANTHROPIC, NULL}, .own_stdout = true \
    }

static const struct canary canaries[] = {
    SECRET("OPENAI_API_KEY (global)", C_GLOBAL_OPENAI, NULL, ROUTE_OPENAI, "authorization", true),
    SECRET("ANTHROPIC_API_KEY (global)", C_GLOBAL_ANTHROPIC, NULL, ROUTE_ANTHROPIC, "x-api-key",
           true),
    SECRET("acme's OpenAI key (keys set)", C_TENANT_OPENAI, NULL, ROUTE_OPENAI, "authorization",
           true),
    SECRET("acme's Anthropic key (keys set)", C_TENANT_ANTHROPIC, NULL, ROUTE_ANTHROPIC,
           "x-api-key", true),
    SECRET("acme's tool:github credential", C_TOOL, NULL, NULL, NULL, false),
    SECRET("the key command's output", C_CMD_OUT, NULL, ROUTE_OPENAI, "authorization", true),
    SECRET("a token in the key command's text", C_CMD_TEXT, NULL, NULL, NULL, false),
    SECRET("the output of a key command that failed", C_FAILED_OUT, NULL, NULL, NULL, false),
    SECRET("MEMCHAT_MASTER_KEY", C_MASTER, C_MASTER_RAW, NULL, NULL, false),
    SECRET("a wrong MEMCHAT_MASTER_KEY", C_WRONG_MASTER, C_WRONG_MASTER_RAW, NULL, NULL, false),
    SECRET("a malformed MEMCHAT_MASTER_KEY", C_BAD_MASTER, NULL, NULL, NULL, false),
    SECRET("OPIK_API_KEY", C_OPIK, NULL, ROUTE_OPIK, "authorization", true),
    SECRET("the keystore passphrase", C_PASS, NULL, NULL, NULL, false),
    SECRET("a wrong keystore passphrase", C_WRONG_PASS, NULL, NULL, NULL, false),
    SECRET("acme's GITHUB_TOKEN of tool github (tools add-credential)", C_TOOL_CRED, NULL, NULL,
           NULL, false),
    SECRET("TOOL_CREDENTIALS_ENCRYPTION_KEY", C_TOOL_KEY, C_TOOL_KEY_RAW, NULL, NULL, false),
    SECRET("a wrong TOOL_CREDENTIALS_ENCRYPTION_KEY", C_WRONG_TOOL_KEY, C_WRONG_TOOL_RAW, NULL,
           NULL, false),
    SECRET("a malformed TOOL_CREDENTIALS_ENCRYPTION_KEY", C_BAD_TOOL_KEY, NULL, NULL, NULL, false),
    PASTED("an OpenAI key pasted into mem's chats and memories", C_PASTED_KEY, T_PASTED),
    PASTED("a GitHub token pasted into mem's chats and memories", C_PASTED_TOKEN, T_PASTED),
};

#define N_CANARIES (sizeof canaries / sizeof canaries[0])
#define MAX_FORMS  16

/* The indexes of the rows the self-check names. */
enum {
    K_GLOBAL_OPENAI = 0,
    K_TENANT_OPENAI = 2,
    K_TENANT_ANTHROPIC = 3,
    K_MASTER = 8,
    K_OPIK = 11,
    K_WRONG_PASS = 13,
};
#define K_PASTED_KEY (N_CANARIES - 2)

/* One byte pattern that betrays a canary. */
struct form {
    char text[128];
    size_t len;
    char how[48];
};

static struct form forms[N_CANARIES][MAX_FORMS];
static size_t n_forms[N_CANARIES];

/* Standard (or URL-safe) padded base64 of in[0..n) into out; its length. */
static size_t b64_encode(const unsigned char *in, size_t n, char *out, bool url)
{
    const char *abc = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                          : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = i + 1 < n ? abc[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? abc[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static void form_add(size_t c, const char *text, size_t len, const char *how)
{
    for (size_t i = 0; i < n_forms[c]; i++)
        if (forms[c][i].len == len && memcmp(forms[c][i].text, text, len) == 0)
            return;
    assert_true(n_forms[c] < MAX_FORMS && len < sizeof forms[c][0].text);
    struct form *f = &forms[c][n_forms[c]++];
    memcpy(f->text, text, len);
    f->text[len] = '\0';
    f->len = len;
    snprintf(f->how, sizeof f->how, "%s", how);
}

/* The forms of s: itself, and its base64 as it reads inside any longer
 * base64 text: preceded by 0, 1 or 2 other bytes, the characters that
 * depend on s's bytes alone (standard and URL-safe alphabets). */
static void forms_of(size_t c, const char *s, const char *what)
{
    size_t n = strlen(s);
    char how[48];
    snprintf(how, sizeof how, "%s", what);
    form_add(c, s, n, how);
    for (size_t shift = 0; shift < 3; shift++) {
        unsigned char in[96] = {0};
        memcpy(in + shift, s, n);
        for (int url = 0; url < 2; url++) {
            char out[160];
            b64_encode(in, shift + n, out, url);
            size_t from = (shift * 8 + 5) / 6, to = (shift + n) * 8 / 6;
            snprintf(how, sizeof how, "%s, base64%s at offset %zu", what, url ? "url" : "", shift);
            form_add(c, out + from, to - from, how);
        }
    }
}

static void forms_init(void)
{
    for (size_t c = 0; c < N_CANARIES; c++) {
        n_forms[c] = 0;
        forms_of(c, canaries[c].value, "as is");
        if (canaries[c].raw != NULL)
            forms_of(c, canaries[c].raw, "decoded");
    }
}

/* ---- what the steps did with the canaries ---------------------------------
 * A canary is found where it may be (a sighting, recorded in seen[]) or
 * anywhere else (a leak, listed for the failure message). */
enum {
    SEEN_HEADER = 1u << 0, /* its own auth header, on its own route */
    SEEN_FILE = 1u << 1,   /* a data-dir file that stores its tenant's chats and memories */
    SEEN_BODY = 1u << 2,   /* the body of a request to a model, in its tenant's run */
    SEEN_STDOUT = 1u << 3, /* its tenant's stdout */
};

static bool held[N_CANARIES];       /* its tenant's chats or memories hold it by now */
static unsigned seen[N_CANARIES];   /* SEEN_* bits, over the whole scenario */
static bool stored_now[N_CANARIES]; /* the latest file scan found it in an allowed file */
static size_t requests_scanned;     /* the server's requests before this one are scanned */
/* A trace file, and a trace sent to Opik, held a redacted credential: the
 * pasted ones reached both, so their absence there is the redactor's. */
#define REDACTED "[redacted]" /* util/redact.h's REDACT_MARK */
static bool redacted_in_traces, redacted_in_opik;

/* The leaks a scan found, one per line. */
struct leaks {
    char text[4096];
    size_t n;
};

__attribute__((format(printf, 2, 3))) static void leaks_add(struct leaks *l, const char *fmt, ...)
{
    size_t used = strlen(l->text);
    l->n++;
    if (used + 8 >= sizeof l->text)
        return; /* the first ones say enough */
    snprintf(l->text + used, sizeof l->text - used, "\n  - ");
    used += strlen(l->text + used);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text + used, sizeof l->text - used, fmt, ap);
    va_end(ap);
}

/* May canary c be where a scan looks? ud says where (each caller its own). */
typedef bool (*canary_may)(size_t c, const void *ud);

/* Looks for every canary (the first of its forms) in hay[0..len): one
 * that may be there (may is not NULL and says so) is a sighting, marked
 * with mark in seen[]; any other a leak "<canary> (<form>) <place>". */
static void find_canaries(const char *hay, size_t len, canary_may may, const void *ud,
                          unsigned mark, struct leaks *l, const char *place)
{
    for (size_t c = 0; c < N_CANARIES; c++)
        for (size_t f = 0; f < n_forms[c]; f++) {
            if (memmem(hay, len, forms[c][f].text, forms[c][f].len) == NULL)
                continue;
            if (may != NULL && may(c, ud))
                seen[c] |= mark;
            else
                leaks_add(l, "%s (%s) %s", canaries[c].name, forms[c][f].how, place);
            break;
        }
}

/* Is tenant the one whose chats and memories c was pasted into? */
static bool canary_of_tenant(size_t c, const char *tenant)
{
    return canaries[c].tenant != NULL && tenant != NULL && strcmp(canaries[c].tenant, tenant) == 0;
}

/* On the stdout of a run of tenant ud: the user's own output. */
static bool may_show(size_t c, const void *ud)
{
    return held[c] && canaries[c].own_stdout && canary_of_tenant(c, ud);
}

/* ---- the places ----------------------------------------------------------
 * Everything under HOME is read (raw bytes); the rows name the files a hit
 * is reported in (the longest matching row wins) and say which must exist
 * after the scenario, so a scan that reads nothing cannot pass. */
enum place_kind { PLACE_STDOUT, PLACE_STDERR, PLACE_FILES, PLACE_REQUESTS };
enum place_root { ROOT_NONE, ROOT_HOME, ROOT_DATA, ROOT_CONFIG };

struct place {
    const char *name;
    enum place_kind kind;
    enum place_root root;
    const char *rel; /* a file or a directory under root; "" is root itself */
    bool must_exist;
};

static const struct place places[] = {
    {"stdout (text, and every event of --json)", PLACE_STDOUT, ROOT_NONE, NULL, false},
    {"stderr", PLACE_STDERR, ROOT_NONE, NULL, false},
    {"memchat.log", PLACE_FILES, ROOT_DATA, "memchat.log", true},
    {"the traces/ files", PLACE_FILES, ROOT_DATA, "traces", true},
    {"the data file memchat.db", PLACE_FILES, ROOT_DATA, "memchat.db", true},
    {"the data file's memchat.db-wal", PLACE_FILES, ROOT_DATA, "memchat.db-wal", false},
    {"the keystore", PLACE_FILES, ROOT_DATA, "keystore", true},
    {"a file of the data dir", PLACE_FILES, ROOT_DATA, "", true},
    {"a file of the config dir (master.key, config.env)", PLACE_FILES, ROOT_CONFIG, "", true},
    {"a file of HOME (the working directory)", PLACE_FILES, ROOT_HOME, "", true},
    {"the requests the server received (outside their own auth header)", PLACE_REQUESTS, ROOT_NONE,
     NULL, false},
};

#define N_PLACES (sizeof places / sizeof places[0])

static const char *root_dir(enum place_root r)
{
    switch (r) {
    case ROOT_HOME:
        return fx.dir;
    case ROOT_DATA:
        return fx.data;
    case ROOT_CONFIG:
        return fx.cfgdir;
    case ROOT_NONE:
        break;
    }
    return NULL;
}

/* The path of a place row (caller frees). */
static char *place_path(const struct place *p)
{
    const char *root = root_dir(p->root);
    size_t n = strlen(root) + strlen(p->rel) + 2;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, p->rel[0] ? "%s/%s" : "%s", root, p->rel);
    return s;
}

/* The name of the most specific file row that holds path. */
static const char *place_of_file(const char *path)
{
    const char *best = "a file";
    size_t best_len = 0;
    for (size_t i = 0; i < N_PLACES; i++) {
        if (places[i].kind != PLACE_FILES)
            continue;
        char *p = place_path(&places[i]);
        size_t n = strlen(p);
        if (strncmp(path, p, n) == 0 && (path[n] == '\0' || path[n] == '/') && n > best_len) {
            best = places[i].name;
            best_len = n;
        }
        free(p);
    }
    return best;
}

/* In the file at path ud: one of the data dir's files that store its
 * tenant's chats and memories (the main data dir's only). */
static bool may_store(size_t c, const void *ud)
{
    const char *path = ud;
    size_t n = strlen(fx.data);
    if (!held[c] || strncmp(path, fx.data, n) != 0 || path[n] != '/')
        return false;
    for (size_t i = 0; i < 3 && canaries[c].files[i] != NULL; i++)
        if (strcmp(path + n + 1, canaries[c].files[i]) == 0) {
            stored_now[c] = true;
            return true;
        }
    return false;
}

static bool scan_file(void *ud, const char *path, const char *data, size_t len)
{
    char place[600];
    snprintf(place, sizeof place, "in %s (%.400s)", place_of_file(path), path);
    find_canaries(data, len, may_store, path, SEEN_FILE, ud, place);
    if (strstr(path, "/traces/") != NULL && memmem(data, len, REDACTED, strlen(REDACTED)) != NULL)
        redacted_in_traces = true;
    return false; /* every file: a scan lists every leak */
}

/* Scans the files of every file row (each file once: the rows' roots are
 * HOME and directories inside it, so HOME's walk covers them all). */
static void scan_files(struct leaks *l)
{
    memset(stored_now, 0, sizeof stored_now);
    harness_walk_files(fx.dir, scan_file, l);
}

/* A request, for the checks of its parts. */
struct request_at {
    const char *path;   /* its path */
    const char *tenant; /* the tenant of the run that sent it */
    const char *header; /* the header being checked */
    const char *value;  /* and its value */
};

/* In a request's body: to a model, in a run of its tenant (the user sent
 * it there). */
static bool may_send_body(size_t c, const void *ud)
{
    const struct request_at *at = ud;
    if (!held[c] || !canary_of_tenant(c, at->tenant))
        return false;
    for (size_t i = 0; i < 3 && canaries[c].body_routes[i] != NULL; i++)
        if (strstr(at->path, canaries[c].body_routes[i]) != NULL)
            return true;
    return false;
}

/* In a request header: its own auth header, on its own route, as is. */
static bool may_send_header(size_t c, const void *ud)
{
    const struct request_at *at = ud;
    return canaries[c].header != NULL && strcmp(at->header, canaries[c].header) == 0 &&
           strstr(at->path, canaries[c].route) != NULL &&
           strstr(at->value, canaries[c].value) != NULL;
}

/* Scans the requests the server logged since the last scan, sent by a run
 * of tenant (NULL: none). A canary in the header its row allows, on its
 * row's route, is a legitimate send (SEEN_HEADER); a pasted one in the body
 * of a request to a model its tenant's run sent, another (SEEN_BODY). */
static void scan_requests(const char *tenant, struct leaks *l)
{
    cJSON *arr = NULL;
    size_t n = mock_requests(mock, &arr);
    for (size_t i = requests_scanned; i < n; i++) {
        const cJSON *req = cJSON_GetArrayItem(arr, (int)i);
        const char *path = cJSON_GetObjectItemCaseSensitive(req, "path")->valuestring;
        const char *body = cJSON_GetObjectItemCaseSensitive(req, "body")->valuestring;
        struct request_at at = {path, tenant, NULL, NULL};
        char place[600];
        snprintf(place, sizeof place, "in the path of a request to %.400s", path);
        find_canaries(path, strlen(path), NULL, NULL, 0, l, place);
        snprintf(place, sizeof place, "in the body of a request to %.400s", path);
        find_canaries(body, strlen(body), may_send_body, &at, SEEN_BODY, l, place);
        if (strstr(path, ROUTE_OPIK) != NULL && strstr(body, REDACTED) != NULL)
            redacted_in_opik = true;
        const cJSON *h;
        cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(req, "headers"))
        {
            at.header = h->string;
            at.value = h->valuestring;
            snprintf(place, sizeof place, "in the name of a header of a request to %.400s", path);
            find_canaries(h->string, strlen(h->string), NULL, NULL, 0, l, place);
            snprintf(place, sizeof place, "in the %.100s header of a request to %.400s", h->string,
                     path);
            find_canaries(h->valuestring, strlen(h->valuestring), may_send_header, &at, SEEN_HEADER,
                          l, place);
        }
    }
    requests_scanned = n;
    cJSON_Delete(arr);
}

/* Scans every place after a run of tenant: r's streams (r may be NULL),
 * the files, the requests since the last scan. True when it found leaks,
 * listed in l. */
static bool scan_places(const struct run *r, const char *tenant, struct leaks *l)
{
    memset(l, 0, sizeof *l);
    for (size_t i = 0; r != NULL && i < N_PLACES; i++) {
        char place[128];
        snprintf(place, sizeof place, "on %s", places[i].name);
        if (places[i].kind == PLACE_STDOUT)
            find_canaries(r->out, r->out_len, may_show, tenant, SEEN_STDOUT, l, place);
        else if (places[i].kind == PLACE_STDERR)
            find_canaries(r->err, r->err_len, NULL, NULL, 0, l, place);
    }
    scan_files(l);
    scan_requests(tenant, l);
    return l->n > 0;
}

/* ---- the steps ----------------------------------------------------------- */

/* One run of memchat. env entries are "NAME=VALUE" (replacing the base
 * environment's NAME; '@' in a value stands for the server's URL, "@echo"
 * for the quoting model server's) or a bare "NAME" (removing it). Its
 * tenant is its --tenant argument, else T_DEFAULT. */
struct step {
    const char *name;
    int exit_code;      /* -1: any (a chat goes on after a failed turn) */
    const char *output; /* a text stdout or stderr holds: the path was reached */
    const char *in;     /* stdin, or NULL */
    const char *env[4];
    void (*before)(void); /* sets up a state for the run, or NULL */
    void (*after)(void);  /* undoes it, before the scan */
    const char *args[16];
};

/* The environment every step starts from: all keys, both providers and
 * Opik on the test server, debug logging, traces on. */
static const char *const base_env[] = {
    "OPENAI_BASE_URL=@/v1",
    "ANTHROPIC_BASE_URL=@",
    "OPIK_URL_OVERRIDE=@/api",
    "OPENAI_API_KEY=" C_GLOBAL_OPENAI,
    "ANTHROPIC_API_KEY=" C_GLOBAL_ANTHROPIC,
    "MEMCHAT_MASTER_KEY=" C_MASTER,
    "OPIK_API_KEY=" C_OPIK,
    "MEMCHAT_LOG_LEVEL=debug",
    "MEMCHAT_TRACE=true",
    "MEMCHAT_MAX_RETRIES=1",
    "MEMCHAT_PROVIDER=openai",
    "MEMCHAT_MODEL=mock",
};

#define N_BASE_ENV (sizeof base_env / sizeof base_env[0])

static char keystore_copy[65536];
static size_t keystore_copy_len;

static void write_home_file(const char *dir, const char *name, const char *text)
{
    assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
    free(tu_write_file(dir, name, text));
}

static void remove_home_file(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(unlink(path), 0);
}

static void bad_config_write(void)
{
    write_home_file(fx.cfgdir, "config.env", "MEMCHAT_MAX_TOKENS=plenty\n");
}

static void bad_config_remove(void)
{
    remove_home_file(fx.cfgdir, "config.env");
}

/* A working-directory .env may not set MEMCHAT_MASTER_KEY: the refusal
 * must not repeat the value. The file is removed before the scan (it is
 * the test's own plant, not memchat's output). */
static void dotenv_write(void)
{
    write_home_file(fx.dir, ".env", "MEMCHAT_MASTER_KEY=" C_WRONG_MASTER "\n");
}

static void dotenv_remove(void)
{
    remove_home_file(fx.dir, ".env");
}

/* The data dir moves to <data>.main for one step, which thus starts from
 * an empty one; afterwards that step's dir stays as <data>.pass (still
 * scanned: it is under HOME) and the main one comes back. */
static void data_dir_move(const char *from_suffix, const char *to_suffix)
{
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s%s", fx.data, from_suffix);
    snprintf(b, sizeof b, "%s%s", fx.data, to_suffix);
    if (rename(a, b) != 0)
        fail_msg("rename %s %s: %s", a, b, strerror(errno));
}

static void data_dir_aside(void)
{
    data_dir_move("", ".main");
}

static void data_dir_back(void)
{
    data_dir_move("", ".pass");
    data_dir_move(".main", "");
}

/* A user tool that declares GITHUB_TOKEN, with its script beside it (the
 * registry wants an executable). It stays for the later steps. */
static void tool_file_write(void)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/tools", fx.cfgdir);
    write_home_file(dir, "github.json",
                    "{\"name\":\"github\",\"description\":\"GitHub issues.\",\"parameters\":"
                    "{\"type\":\"object\"},\"command\":[\"gh.sh\"],\"read_only\":true,"
                    "\"credentials\":[\"GITHUB_TOKEN\"]}");
    write_home_file(dir, "gh.sh", "#!/bin/sh\ncat >/dev/null\necho '{}'\n");
    snprintf(path, sizeof path, "%s/gh.sh", dir);
    assert_int_equal(chmod(path, 0700), 0);
}

/* Flips one byte inside the keystore's last record, keeping a copy. */
static void keystore_damage(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/keystore", fx.data);
    size_t len = 0;
    char *s = tu_read_file(path, &len);
    assert_non_null(s);
    assert_true(len <= sizeof keystore_copy);
    memcpy(keystore_copy, s, len);
    keystore_copy_len = len;
    char *ct = NULL;
    for (char *p = s; (p = strstr(p, "\"ct\":\"")) != NULL; p++)
        ct = p;
    assert_non_null(ct);
    ct[6 + 4] ^= 0x01;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(s, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(s);
}

static void keystore_restore(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/keystore", fx.data);
    size_t len = 0;
    char *s = tu_read_file(path, &len);
    assert_non_null(s);
    assert_false(len == keystore_copy_len && memcmp(s, keystore_copy, len) == 0); /* damaged */
    free(s);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(keystore_copy, 1, keystore_copy_len, f), keystore_copy_len);
    assert_int_equal(fclose(f), 0);
}

/* ---- a model server that quotes the message in its errors ---------------
 * Some OpenAI-compatible servers and proxies quote the request in an error
 * message. This one answers every request 500 with {"error":{"message":
 * "the server cannot take this message: <the last message's content>"}},
 * so a credential pasted into the chat comes back inside an error (and its
 * retry), which may then go only where the credential itself may. A forked
 * child of the test, alive for one step; its requests are not scanned (it
 * is the test's own server). */
static pid_t echo_pid = -1;
static char echo_url[64];

/* The last "content":"..." of body, still JSON-escaped, at most max bytes
 * (never cut inside an escape), into out. */
static void echo_content(const char *body, char *out, size_t max)
{
    static const char key[] = "\"content\":\"";
    const char *last = NULL;
    for (const char *p = body; (p = strstr(p, key)) != NULL; p++)
        last = p + sizeof key - 1;
    size_t n = 0;
    for (const char *p = last; p != NULL && *p != '\0' && *p != '"';) {
        size_t step = *p == '\\' && p[1] != '\0' ? 2 : 1;
        if (n + step > max)
            break;
        memcpy(out + n, p, step);
        n += step;
        p += step;
    }
    out[n] = '\0';
}

/* Reads one request from fd and answers it. */
static void echo_answer(int fd)
{
    static char req[262144];
    size_t len = 0, want = 0;
    const char *body = NULL;
    while (body == NULL || (size_t)(req + len - body) < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (len == sizeof req - 1 || poll(&p, 1, MOCK_GUARD_MS) <= 0)
            return;
        ssize_t n = read(fd, req + len, sizeof req - 1 - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        char *end = body == NULL ? strstr(req, "\r\n\r\n") : NULL;
        if (end != NULL) {
            *end = '\0'; /* the headers end here */
            const char *cl = strcasestr(req, "\r\ncontent-length:");
            want = cl != NULL ? strtoul(cl + 17, NULL, 10) : 0;
            body = end + 4;
        }
    }
    char quoted[256], msg[512], resp[1024];
    echo_content(body, quoted, 200);
    int m = snprintf(msg, sizeof msg,
                     "{\"error\":{\"message\":\"the server cannot take this message: %s\","
                     "\"type\":\"server_error\"}}",
                     quoted);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     m, msg);
    if (n > 0 && (size_t)n < sizeof resp) {
        ssize_t w = write(fd, resp, (size_t)n);
        (void)w; /* a client that hung up needs no answer */
    }
}

/* Starts the server on a loopback port (echo_url). The child keeps only
 * its socket: a copy of the mock's stdin pipe would keep the mock alive. */
static void echo_start(void)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(ls >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ls, 8), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
    snprintf(echo_url, sizeof echo_url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    fflush(NULL);
    echo_pid = fork();
    assert_true(echo_pid >= 0);
    if (echo_pid == 0) {
        for (int fd = 3; fd < 1024; fd++)
            if (fd != ls)
                close(fd);
        signal(SIGPIPE, SIG_IGN);
        for (;;) {
            struct pollfd p = {.fd = ls, .events = POLLIN};
            if (poll(&p, 1, MOCK_GUARD_MS) <= 0)
                _exit(0); /* a test that died without stopping it */
            int fd = accept(ls, NULL, NULL);
            if (fd >= 0) {
                echo_answer(fd);
                close(fd);
            }
        }
    }
    close(ls);
}

static void echo_stop(void)
{
    assert_true(echo_pid > 0);
    kill(echo_pid, SIGTERM);
    int st;
    assert_int_equal(waitpid(echo_pid, &st, 0), echo_pid);
    echo_pid = -1;
}

/* The rows of the steps table: a run with stdin in, the exit code it must
 * end with and a text its output must hold; with one change of the
 * environment; with hooks around it. */
#define STEP_ROW(name_, env_, before_, after_, in_, code_, says_, ...) \
    {                                                                  \
        name_, code_, says_, in_, {env_}, before_, after_,             \
        {                                                              \
            __VA_ARGS__                                                \
        }                                                              \
    }
#define STEP(name_, in_, code_, says_, ...) \
    STEP_ROW(name_, NULL, NULL, NULL, in_, code_, says_, __VA_ARGS__)
#define STEP_ENV(name_, env_, in_, code_, says_, ...) \
    STEP_ROW(name_, env_, NULL, NULL, in_, code_, says_, __VA_ARGS__)
#define STEP_HOOK(name_, before_, after_, in_, code_, says_, ...) \
    STEP_ROW(name_, NULL, before_, after_, in_, code_, says_, __VA_ARGS__)

#define ASK_ACME       "ask", "--json", "--tenant", "acme"
#define REPLIED        "\"event\":\"delta\"" /* a --json turn that streamed a reply */
#define NO_ENV         "MEMCHAT_MASTER_KEY"  /* removes it: master.key applies */
#define ASK_MEM        "ask", "--json", "--tenant", T_PASTED
#define INJECTED       "\"event\":\"memory.injected\""  /* a turn that recalled memories */
#define RETRIEVED      "\"event\":\"memory.retrieved\"" /* a turn that ranked candidates */
#define CONTINUED      "\"conversation\":\""            /* a turn that carries a conversation on */
#define ECHO_ENV       NO_ENV, "OPENAI_BASE_URL=@echo/v1"
#define TOOL_KEY_ENV   NO_ENV, "TOOL_CREDENTIALS_ENCRYPTION_KEY=" C_TOOL_KEY
#define WRONG_TOOL_ENV NO_ENV, "TOOL_CREDENTIALS_ENCRYPTION_KEY=" C_WRONG_TOOL_KEY
#define BAD_TOOL_ENV   NO_ENV, "TOOL_CREDENTIALS_ENCRYPTION_KEY=" C_BAD_TOOL_KEY
#define ADD_GH_TOKEN   "tools", "add-credential", "github", "GITHUB_TOKEN", "--tenant", "acme"
/* A note longer than MEMORY_MAX_BYTES=256, the key in its middle. */
#define LONG_NOTE                                                                        \
    "The runbook for the payments service, step by step, as the on-call team wrote it. " \
    "First check the dashboards and the queue depth. Then page the owner if it grows. "  \
    "The break-glass key is " C_PASTED_KEY " and lives in the sealed envelope. "         \
    "Never paste it anywhere else; rotate it after every use and log who used it and when."

static const struct step steps[] = {
    /* the keystore and its records, under MEMCHAT_MASTER_KEY */
    STEP("keys init", NULL, 0, "created the keystore", "keys", "init"),
    STEP_HOOK("keys init --passphrase (in a fresh data dir)", data_dir_aside, data_dir_back,
              C_PASS "\n", 0, "from a passphrase", "keys", "init", "--passphrase",
              "--passphrase-stdin"),
    STEP("keys set (openai)", C_TENANT_OPENAI, 0, "stored the key", "keys", "set", "--tenant",
         "acme", "--provider", "openai"),
    STEP("keys set (anthropic)", C_TENANT_ANTHROPIC "\n", 0, "stored the key", "keys", "set",
         "--tenant", "acme", "--provider", "anthropic"),
    STEP("keys set (tool:github)", C_TOOL, 0, "stored the key", "keys", "set", "--tenant", "acme",
         "--provider", "tool:github"),
    STEP("keys set --command", NULL, 0, "stored the key command", "keys", "set", "--tenant", "cmd",
         "--provider", "openai", "--command", CMD_OK),
    STEP("keys set --command (one that fails)", NULL, 0, "stored the key command", "keys", "set",
         "--tenant", "broken", "--provider", "openai", "--command", CMD_FAILED),
    STEP("keys list", NULL, 0, "tool:github", "keys", "list"),
    STEP("keys list --json", NULL, 0, "\"masked\"", "keys", "list", "--json"),

    /* turns with each kind of key */
    STEP("ask (global OpenAI key)", NULL, 0, REPLIED, "ask", "--json", "hi"),
    STEP("ask (global Anthropic key)", NULL, 0, REPLIED, "ask", "--json", "--provider", "anthropic",
         "hi"),
    STEP("ask (tenant OpenAI key)", NULL, 0, REPLIED, ASK_ACME, "hi"),
    STEP("ask (tenant Anthropic key)", NULL, 0, REPLIED, ASK_ACME, "--provider", "anthropic", "hi"),
    STEP("ask (key command)", NULL, 0, "mock reply", "ask", "--tenant", "cmd", "hi"),
    STEP("ask (the question on stdin)", "a question on stdin", 0, "mock reply", "ask", "--tenant",
         "acme"),

    /* error paths of a turn */
    STEP("ask (a failing key command)", NULL, 2, "exited with status 3", "ask", "--json",
         "--tenant", "broken", "hi"),
    STEP("ask (OpenAI answers 401)", NULL, 3, "401", ASK_ACME, "--model", "mock:401", "hi"),
    STEP("ask (Anthropic answers 401, global key)", NULL, 3, "401", "ask", "--provider",
         "anthropic", "--model", "mock:401", "hi"),
    STEP("ask (500 until retries run out)", NULL, 3, "gave up", "ask", "--tenant", "acme",
         "--model", "mock:500", "hi"),
    STEP("ask (Anthropic answers 529)", NULL, 3, "529", ASK_ACME, "--provider", "anthropic",
         "--model", "mock:529", "hi"),
    STEP("ask (400)", NULL, 3, "400", ASK_ACME, "--model", "mock:400", "hi"),
    STEP("ask (a huge error body)", NULL, 3, "500", "ask", "--tenant", "acme", "--model",
         "mock:big-error", "hi"),
    STEP("ask (the stream breaks)", NULL, 3, "network", ASK_ACME, "--model", "mock:drop", "hi"),
    STEP_ENV("ask (Opik answers 401 quoting its key)", "OPIK_URL_OVERRIDE=@/mock:echo-key/api",
             NULL, 0, REPLIED, ASK_ACME, "hi"),
    STEP_ENV("ask (Opik answers 500)", "OPIK_URL_OVERRIDE=@/mock:500/api", NULL, 0, REPLIED,
             ASK_ACME, "hi"),

    /* the chat, and the other verbs */
    STEP("chat --plain", "hello\n/tenant cmd\nagain\n/tenant other\nonce more\n", 0,
         "mock reply: once more", "chat", "--plain", "--tenant", "acme"),
    STEP("chat --plain (a failing key command)", "hello\n", -1, "exited with status 3", "chat",
         "--plain", "--tenant", "broken"),
    STEP("chat --json", "hello\n", 0, REPLIED, "chat", "--json", "--tenant", "acme"),
    STEP("config", NULL, 0, "OPIK_API_KEY", "config"),
    STEP("config --json", NULL, 0, "MEMCHAT_MASTER_KEY", "config", "--json"),
    STEP("costs", NULL, 0, "acme", "costs"),
    STEP("costs --json", NULL, 0, "mock", "costs", "--by", "model", "--json"),
    STEP("limits set", NULL, 0, "rpm", "limits", "set", "--tenant", "acme", "rpm=100"),
    STEP("limits show --json", NULL, 0, "rpm", "limits", "show", "--tenant", "acme", "--json"),

    /* memory and conversations: credentials pasted into mem's chats and
     * memories, with every other secret present (the global keys and the
     * master key in the environment, acme's keys in the keystore) */
    STEP("memory add (a key in the argument)", NULL, 0, "\"chunks\":1", "memory", "add", "--json",
         "--tenant", T_PASTED, "My deploy key for prod is " C_PASTED_KEY ", keep it safe."),
    STEP("memory add (a token on stdin, --user, --agent, --meta)",
         "The release bot's GitHub token is " C_PASTED_TOKEN " (rotated in May).", 0,
         "\"chunks\":1", "memory", "add", "--json", "--tenant", T_PASTED, "--user", "bob",
         "--agent", "ops", "--meta", "source=chat"),
    STEP("ask (recalls both, sends them to OpenAI)", NULL, 0, INJECTED, ASK_MEM,
         "What is my deploy key for prod?"),
    STEP("ask (offline: the reply quotes the recalled note)", NULL, 0, "From memory:", "ask",
         "--tenant", T_PASTED, "--provider", "offline",
         "Which GitHub token does the release bot use?"),
    STEP("ask --json (offline)", NULL, 0, INJECTED, ASK_MEM, "--provider", "offline",
         "the deploy key for prod?"),
    STEP("ask (a key pasted into the chat)", NULL, 0, REPLIED, ASK_MEM,
         "Use this one from now on: OPENAI_API_KEY=" C_PASTED_KEY),
    STEP("ask --continue", NULL, 0, CONTINUED, ASK_MEM, "--continue",
         "And which token does the bot use?"),
    STEP("ask --continue (Anthropic)", NULL, 0, CONTINUED, ASK_MEM, "--continue", "--provider",
         "anthropic", "Say both of them again."),
    STEP("chat --plain (a token pasted into the chat)",
         "{\"token\": \"" C_PASTED_TOKEN "\"}\n/memory off\nwhat was it?\n/memory on\nand now?\n",
         0, "mock reply: and now?", "chat", "--plain", "--tenant", T_PASTED),
    STEP_ENV("ask (the embedder changed: the exchange waits in pending_memories)",
             "EMBEDDINGS_DIMENSION=512", NULL, 0, "dimension_mismatch", ASK_MEM,
             "Remember that staging uses " C_PASTED_TOKEN),
    STEP_ENV("memory search (the embedder changed)", "EMBEDDINGS_DIMENSION=512", NULL, 2,
             "EMBEDDINGS_DIMENSION", "memory", "search", "--tenant", T_PASTED, "token"),
    STEP("memory search", NULL, 0, "My deploy key", "memory", "search", "--tenant", T_PASTED,
         "deploy key for prod"),
    STEP("memory search --json (hybrid, --filter on a --meta key)", NULL, 0, "\"scores\"", "memory",
         "search", "--json", "--tenant", T_PASTED, "--method", "hybrid", "--filter",
         "{\"source\":{\"$eq\":\"chat\"}}", "release bot token"),
    STEP("memory export", NULL, 0, "\"text\":\"My deploy key", "memory", "export", "--tenant",
         T_PASTED),
    STEP("memory import (a bad id: refused without quoting the text)",
         "{\"text\":\"staging: " C_PASTED_KEY "\",\"id\":\"not-a-uuid\"}\n", 2, "not a UUID",
         "memory", "import", "--tenant", T_PASTED),
    STEP("memory import", "{\"text\":\"The staging key is " C_PASTED_KEY "\"}\n", 0,
         "imported 1 memory", "memory", "import", "--tenant", T_PASTED),
    STEP("memory add (invalid UTF-8: refused without quoting the text)",
         "a bad byte \xff"
         " then " C_PASTED_TOKEN,
         2, "UTF-8", "memory", "add", "--tenant", T_PASTED),
    STEP_ENV("memory add (longer than MEMORY_MAX_BYTES: chunked)", "MEMORY_MAX_BYTES=256",
             LONG_NOTE, 0, "\"chunks\":2", "memory", "add", "--json", "--tenant", T_PASTED),
    STEP("memory history", NULL, 0, "add", "memory", "history", "--tenant", T_PASTED),
    STEP("memory history --json", NULL, 0, "\"op\":\"add\"", "memory", "history", "--json",
         "--tenant", T_PASTED),
    STEP("memory stats --json (every tenant)", NULL, 0, "\"" T_PASTED "\"", "memory", "stats",
         "--json"),
    STEP("conversations", NULL, 0, "TITLE", "conversations", "--tenant", T_PASTED),
    STEP("conversations --json", NULL, 0, "\"turns\":", "conversations", "--json", "--tenant",
         T_PASTED),

    /* other tenants see none of it */
    STEP("memory search --json (another tenant)", NULL, 0, "\"text\"", "memory", "search", "--json",
         "--tenant", "acme", "hi, what is the deploy key or the bot token?"),
    STEP("memory export (another tenant)", NULL, 0, "\"text\"", "memory", "export", "--tenant",
         "acme"),
    STEP("ask (another tenant asks for the key)", NULL, 0, RETRIEVED, ASK_ACME,
         "What is my deploy key for prod?"),
    STEP("conversations --json (the default tenant)", NULL, 0, "\"turns\":", "conversations",
         "--json"),
    STEP("costs --json (by conversation)", NULL, 0, "\"conversation\"", "costs", "--by",
         "conversation", "--json"),

    /* purge: afterwards the pasted credentials are nowhere, memchat.db and
     * its WAL included */
    STEP("purge --user (one user of the tenant)", NULL, 0, "user bob", "purge", "--tenant",
         T_PASTED, "--user", "bob", "--yes"),
    STEP("purge --json", NULL, 0, "\"memories\":", "purge", "--json", "--tenant", T_PASTED,
         "--yes"),
    STEP("memory search (after purge)", NULL, 0, "no memories", "memory", "search", "--tenant",
         T_PASTED, "deploy key for prod"),
    STEP("conversations (after purge)", NULL, 0, "no conversations", "conversations", "--tenant",
         T_PASTED),
    STEP("ask (after purge: nothing to recall)", NULL, 0, REPLIED, ASK_MEM,
         "What is my deploy key for prod?"),

    /* configuration errors */
    STEP_HOOK("a bad config.env (config)", bad_config_write, bad_config_remove, NULL, 2,
              "MEMCHAT_MAX_TOKENS", "config"),
    STEP_HOOK("a bad config.env (ask)", bad_config_write, bad_config_remove, NULL, 2,
              "MEMCHAT_MAX_TOKENS", ASK_ACME, "hi"),
    STEP_HOOK("MEMCHAT_MASTER_KEY in a working-directory .env", dotenv_write, dotenv_remove, NULL,
              2, ".env", "keys", "list"),
    STEP("an unknown option", NULL, 2, "--bogus", "ask", "--bogus", "hi"),

    /* master key errors */
    STEP_ENV("a wrong master key (keys list)", "MEMCHAT_MASTER_KEY=" C_WRONG_MASTER, NULL, 2,
             "does not open", "keys", "list"),
    STEP_ENV("a wrong master key (ask)", "MEMCHAT_MASTER_KEY=" C_WRONG_MASTER, NULL, 2,
             "does not open", ASK_ACME, "hi"),
    STEP_ENV("a malformed master key (keys list)", "MEMCHAT_MASTER_KEY=" C_BAD_MASTER, NULL, 2,
             "base64", "keys", "list", "--json"),
    STEP_ENV("a malformed master key (ask)", "MEMCHAT_MASTER_KEY=" C_BAD_MASTER, NULL, 2, "base64",
             ASK_ACME, "hi"),
    STEP_ENV("no master key", NO_ENV, NULL, 2, "no master key", "keys", "list"),

    /* a damaged keystore */
    STEP_HOOK("a damaged keystore (keys list)", keystore_damage, keystore_restore, NULL, 2,
              "damaged", "keys", "list"),
    STEP_HOOK("a damaged keystore (ask)", keystore_damage, keystore_restore, NULL, 2, "damaged",
              ASK_ACME, "hi"),
    STEP_HOOK("a damaged keystore (keys set)", keystore_damage, keystore_restore, C_TENANT_OPENAI,
              2, "damaged", "keys", "set", "--tenant", "acme", "--provider", "openai"),

    /* rm and rotate */
    STEP("keys rm", NULL, 0, "removed", "keys", "rm", "--tenant", "acme", "--provider",
         "tool:github"),
    STEP("keys rm (absent)", NULL, 1, "no key", "keys", "rm", "--tenant", "acme", "--provider",
         "tool:github"),
    STEP("keys set (tool:github again)", C_TOOL, 0, "stored the key", "keys", "set", "--tenant",
         "acme", "--provider", "tool:github"),
    STEP("keys rotate (refused: MEMCHAT_MASTER_KEY)", NULL, 2, "MEMCHAT_MASTER_KEY", "keys",
         "rotate"),
    STEP("keys rotate --passphrase", C_PASS "\n", 0, "re-encrypted 5 records", "keys", "rotate",
         "--passphrase", "--passphrase-stdin"),

    /* the passphrase */
    STEP("no passphrase (ask)", NULL, 2, "--passphrase-stdin", ASK_ACME, "hi"),
    STEP("no passphrase (keys list)", NULL, 2, "--passphrase-stdin", "keys", "list"),
    STEP("an empty passphrase", "\n", 2, "empty", "keys", "list", "--passphrase-stdin"),
    STEP("a wrong passphrase (keys list)", C_WRONG_PASS "\n", 2, "does not open", "keys", "list",
         "--passphrase-stdin"),
    STEP("a wrong passphrase (ask)", C_WRONG_PASS "\nhi", 2, "does not open", ASK_ACME,
         "--passphrase-stdin"),
    STEP("keys set with the passphrase on stdin (refused)", C_PASS "\n" C_TENANT_OPENAI, 2,
         "cannot both come from stdin", "keys", "set", "--tenant", "x", "--provider", "openai",
         "--passphrase-stdin"),
    STEP("ask --passphrase-stdin", C_PASS "\nhi", 0, REPLIED, ASK_ACME, "--passphrase-stdin"),
    STEP("chat --plain --passphrase-stdin", C_PASS "\nhello\n", 0, "mock reply", "chat", "--plain",
         "--passphrase-stdin", "--tenant", "acme"),
    STEP("keys list --passphrase-stdin", C_PASS "\n", 0, "tool:github", "keys", "list",
         "--passphrase-stdin"),

    /* back to master.key */
    STEP_ENV("keys rotate (to master.key)", NO_ENV, C_PASS "\n", 0, "re-encrypted 5 records",
             "keys", "rotate", "--passphrase-stdin"),
    STEP_ENV("ask (after rotate)", NO_ENV, NULL, 0, REPLIED, ASK_ACME, "hi"),
    STEP_ENV("keys list (after rotate)", NO_ENV, NULL, 0, "tool:github", "keys", "list"),

    /* tools and their credentials, under master.key and the tool key */
    STEP_ROW("tools list (a tool declaring GITHUB_TOKEN)", NO_ENV, tool_file_write, NULL, NULL, 0,
             "GITHUB_TOKEN:missing", "tools", "list", "--tenant", "acme"),
    STEP_ROW("tools add-credential (under TOOL_CREDENTIALS_ENCRYPTION_KEY)", TOOL_KEY_ENV, NULL,
             NULL, C_TOOL_CRED "\n", 0, "sealed under TOOL_CREDENTIALS_ENCRYPTION_KEY",
             ADD_GH_TOKEN),
    STEP_ROW("tools list --json (with the tool key)", TOOL_KEY_ENV, NULL, NULL, NULL, 0,
             "\"GITHUB_TOKEN\":\"set\"", "tools", "list", "--json", "--tenant", "acme"),
    STEP_ENV("tools list (without the tool key)", NO_ENV, NULL, 0, "GITHUB_TOKEN:sealed", "tools",
             "list", "--tenant", "acme"),
    STEP_ROW("keys list --json (with the tool key)", TOOL_KEY_ENV, NULL, NULL, NULL, 0,
             "\"sealed\":\"tool\"", "keys", "list", "--json"),
    STEP_ROW("ask (with the tool key)", TOOL_KEY_ENV, NULL, NULL, NULL, 0, REPLIED, ASK_ACME, "hi"),
    STEP_ROW("config (with the tool key)", TOOL_KEY_ENV, NULL, NULL, NULL, 0,
             "TOOL_CREDENTIALS_ENCRYPTION_KEY", "config", "--json"),
    STEP_ROW("a wrong tool key (tools list)", WRONG_TOOL_ENV, NULL, NULL, NULL, 0, "does not open",
             "tools", "list", "--tenant", "acme"),
    STEP_ROW("a wrong tool key (tools add-credential)", WRONG_TOOL_ENV, NULL, NULL, C_TOOL_CRED, 2,
             "does not open", ADD_GH_TOKEN),
    STEP_ROW("a wrong tool key (keys rotate)", WRONG_TOOL_ENV, NULL, NULL, NULL, 2,
             "before rotating", "keys", "rotate"),
    STEP_ROW("a wrong tool key (ask)", WRONG_TOOL_ENV, NULL, NULL, NULL, 0, REPLIED, ASK_ACME,
             "hi"),
    STEP_ROW("a malformed tool key (keys list)", BAD_TOOL_ENV, NULL, NULL, NULL, 2, "base64",
             "keys", "list"),
    STEP_ROW("a malformed tool key (tools add-credential)", BAD_TOOL_ENV, NULL, NULL, C_TOOL_CRED,
             2, "base64", ADD_GH_TOKEN),
    STEP_ROW("a malformed tool key (ask)", BAD_TOOL_ENV, NULL, NULL, NULL, 0, REPLIED, ASK_ACME,
             "hi"),
    STEP_ROW("keys rotate (with the tool key)", TOOL_KEY_ENV, NULL, NULL, NULL, 0,
             "under TOOL_CREDENTIALS_ENCRYPTION_KEY", "keys", "rotate"),
    STEP_ENV("tools rm-credential", NO_ENV, NULL, 0, "removed credential", "tools", "rm-credential",
             "github", "GITHUB_TOKEN", "--tenant", "acme"),
    STEP_ENV("tools rm-credential (absent)", NO_ENV, NULL, 1, "no credential", "tools",
             "rm-credential", "github", "GITHUB_TOKEN", "--tenant", "acme"),
    STEP_ENV("tools add-credential (under master.key)", NO_ENV, C_TOOL_CRED, 0,
             "sealed under the master key", ADD_GH_TOKEN),

    /* a model server that quotes the pasted key back in its error, which
     * memchat shows, logs with the retry and records in the trace */
    STEP_ROW("ask (the model server quotes the pasted key in its error)", ECHO_ENV, echo_start,
             echo_stop, NULL, 3, "cannot take this message", "ask", "--tenant", T_PASTED,
             "Please check this key: " C_PASTED_KEY),
};

#define N_STEPS (sizeof steps / sizeof steps[0])

/* The name of an environment entry: up to '=' or the end. */
static size_t env_name_len(const char *e)
{
    return strcspn(e, "=");
}

/* e with "@echo" in its value replaced by the quoting server's URL, or
 * else '@' by the test server's, into buf. */
static const char *env_expand(const char *e, char *buf, size_t len)
{
    const char *at = strstr(e, "@echo");
    const char *url = echo_url;
    size_t skip = 5;
    if (at == NULL) {
        at = strchr(e, '@');
        url = mock_url(mock);
        skip = 1;
    }
    if (at == NULL)
        return e;
    snprintf(buf, len, "%.*s%s%s", (int)(at - e), e, url, at + skip);
    return buf;
}

/* The environment of step s (base_env with its changes) into out. */
static void step_env(const struct step *s, const char **out, char bufs[][512])
{
    size_t k = 0, b = 0;
    for (size_t i = 0; i < N_BASE_ENV; i++) {
        bool replaced = false;
        for (size_t j = 0; j < 4 && s->env[j] != NULL; j++)
            replaced |= env_name_len(s->env[j]) == env_name_len(base_env[i]) &&
                        strncmp(s->env[j], base_env[i], env_name_len(base_env[i])) == 0;
        if (!replaced)
            out[k++] = env_expand(base_env[i], bufs[b++], 512);
    }
    for (size_t j = 0; j < 4 && s->env[j] != NULL; j++)
        if (strchr(s->env[j], '=') != NULL)
            out[k++] = env_expand(s->env[j], bufs[b++], 512);
    out[k] = NULL;
}

/* The value of option opt in s's arguments, or NULL. */
static const char *step_option(const struct step *s, const char *opt)
{
    for (size_t i = 0; i + 1 < 16 && s->args[i] != NULL; i++)
        if (strcmp(s->args[i], opt) == 0)
            return s->args[i + 1];
    return NULL;
}

/* The tenant a step runs as. */
static const char *step_tenant(const struct step *s)
{
    const char *t = step_option(s, "--tenant");
    return t != NULL ? t : T_DEFAULT;
}

/* Does s paste canary c: its value in s's arguments or stdin, in a run of
 * its tenant? */
static bool step_pastes(const struct step *s, size_t c)
{
    if (!canary_of_tenant(c, step_tenant(s)))
        return false;
    if (s->in != NULL && strstr(s->in, canaries[c].value) != NULL)
        return true;
    for (size_t i = 0; i < 16 && s->args[i] != NULL; i++)
        if (strstr(s->args[i], canaries[c].value) != NULL)
            return true;
    return false;
}

/* Does s purge its whole tenant (not one user of it)? */
static bool step_purges_tenant(const struct step *s)
{
    return s->args[0] != NULL && strcmp(s->args[0], "purge") == 0 &&
           step_option(s, "--tenant") != NULL && step_option(s, "--user") == NULL;
}

static int case_setup(void **state)
{
    mock = mock_start();
    forms_init();
    memset(held, 0, sizeof held);
    memset(seen, 0, sizeof seen);
    memset(stored_now, 0, sizeof stored_now);
    requests_scanned = 0;
    redacted_in_traces = redacted_in_opik = false;
    return setup(state);
}

static int case_teardown(void **state)
{
    if (echo_pid > 0)
        echo_stop();
    mock_stop(mock);
    mock = NULL;
    return teardown(state);
}

/* A new server: an empty request log. */
static void mock_restart(void)
{
    mock_stop(mock);
    mock = mock_start();
    requests_scanned = 0;
}

/* Sends the server one request: POST path with one more header line and
 * body (logged like any request memchat makes). */
static void raw_post(const char *path, const char *header, const char *body)
{
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\nContent-Type: "
                     "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, header, strlen(body), body);
    assert_true(n > 0 && (size_t)n < sizeof req);
    free(mock_raw_exchange(mock, req, (size_t)n, NULL));
}

/* A run's streams, as the scanner sees them (run_free frees them). */
static struct run fake_run(const char *out, const char *err)
{
    struct run r = {.out = strdup(out), .err = strdup(err)};
    assert_true(r.out != NULL && r.err != NULL);
    r.out_len = strlen(out);
    r.err_len = strlen(err);
    return r;
}

/* Scans, and fails unless it found exactly one leak, naming canary c and
 * where (each a text the leak's description must hold). */
static void expect_one_leak(const struct run *r, const char *tenant, size_t c, const char *where)
{
    struct leaks l;
    if (!scan_places(r, tenant, &l))
        fail_msg("planted %s %s was not found", canaries[c].name, where);
    if (l.n != 1 || strstr(l.text, canaries[c].name) == NULL || strstr(l.text, where) == NULL)
        fail_msg("planted %s %s, found %zu leaks:%s", canaries[c].name, where, l.n, l.text);
}

static void expect_no_leak(const struct run *r, const char *tenant)
{
    struct leaks l;
    if (scan_places(r, tenant, &l))
        fail_msg("found %zu leaks where none are:%s", l.n, l.text);
}

/* The scanner finds every form of every canary planted in a file of the
 * data dir (and says which canary, how encoded, and where), on stdout and
 * stderr, and in a request outside its own auth header (another header;
 * the auth header of another server), while a key in its own auth header
 * is counted as a legitimate send, not a leak. A pasted credential is a
 * sighting, not a leak, only in its tenant's stored chats and memories,
 * on its tenant's stdout and in its tenant's requests to a model, and only
 * while they hold it. Without this the canary test could pass by reading
 * nothing, or by allowing too much. */
static void the_scanner_finds_every_planted_form_in_every_place(void **state)
{
    (void)state;
    assert_string_equal(canaries[K_GLOBAL_OPENAI].value, C_GLOBAL_OPENAI);
    assert_string_equal(canaries[K_TENANT_OPENAI].value, C_TENANT_OPENAI);
    assert_string_equal(canaries[K_TENANT_ANTHROPIC].value, C_TENANT_ANTHROPIC);
    assert_string_equal(canaries[K_MASTER].value, C_MASTER);
    assert_string_equal(canaries[K_OPIK].value, C_OPIK);
    assert_string_equal(canaries[K_WRONG_PASS].value, C_WRONG_PASS);
    assert_string_equal(canaries[K_PASTED_KEY].value, C_PASTED_KEY);
    assert_int_equal(mkdir(fx.data, 0700), 0);
    expect_no_leak(NULL, NULL);
    for (size_t c = 0; c < N_CANARIES; c++) {
        assert_true(n_forms[c] >= 4); /* itself and base64 at three offsets */
        for (size_t f = 0; f < n_forms[c]; f++) {
            char text[256];
            snprintf(text, sizeof text, "xx%syy", forms[c][f].text);
            free(tu_write_file(fx.data, "scratch", text));
            expect_one_leak(NULL, NULL, c, "a file of the data dir");
        }
    }
    remove_home_file(fx.data, "scratch");
    expect_no_leak(NULL, NULL);

    /* The raw master key inside binary data, in a named place. */
    char blob[64] = {0};
    memcpy(blob + 7, C_MASTER_RAW, strlen(C_MASTER_RAW));
    char db[4096];
    snprintf(db, sizeof db, "%s/memchat.db-wal", fx.data);
    FILE *f = fopen(db, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(blob, 1, sizeof blob, f), sizeof blob);
    assert_int_equal(fclose(f), 0);
    expect_one_leak(NULL, NULL, K_MASTER, "MEMCHAT_MASTER_KEY (decoded)");
    expect_one_leak(NULL, NULL, K_MASTER, "memchat.db-wal");
    assert_int_equal(unlink(db), 0);

    struct run r = fake_run("ok " C_OPIK, "");
    expect_one_leak(&r, NULL, K_OPIK, "stdout");
    run_free(&r);
    r = fake_run("", "error: " C_WRONG_PASS "\n");
    expect_one_leak(&r, NULL, K_WRONG_PASS, "stderr");
    run_free(&r);

    /* Requests: the key in its own header is a send, elsewhere a leak. */
    raw_post("/v1/chat/completions", "Authorization: Bearer " C_GLOBAL_OPENAI, "{}");
    expect_no_leak(NULL, NULL);
    assert_true(seen[K_GLOBAL_OPENAI] & SEEN_HEADER);
    raw_post("/v1/chat/completions", "X-Debug: " C_GLOBAL_OPENAI, "{}");
    expect_one_leak(NULL, NULL, K_GLOBAL_OPENAI, "x-debug header");

    mock_restart();
    raw_post("/api/v1/private/traces/batch", "Authorization: " C_TENANT_OPENAI, "{}");
    expect_one_leak(NULL, NULL, K_TENANT_OPENAI,
                    "authorization header of a request to /api/v1/private");

    mock_restart();
    raw_post("/v1/messages", "X-Api-Key: " C_GLOBAL_ANTHROPIC,
             "{\"system\":\"" C_TENANT_ANTHROPIC "\"}");
    expect_one_leak(NULL, NULL, K_TENANT_ANTHROPIC, "body of a request to /v1/messages");

    /* A pasted credential, before its tenant holds it: a leak even in the
     * data file and on its tenant's stdout. */
    const size_t p = K_PASTED_KEY;
    assert_non_null(canaries[p].tenant);
    free(tu_write_file(fx.data, "memchat.db", "xx" C_PASTED_KEY "yy"));
    expect_one_leak(NULL, NULL, p, "memchat.db");
    r = fake_run("From memory: " C_PASTED_KEY, "");
    remove_home_file(fx.data, "memchat.db");
    expect_one_leak(&r, T_PASTED, p, "stdout");

    /* Held: a sighting in the data file and its WAL, on its tenant's
     * stdout, in its tenant's request body to a model; a leak in any
     * other file (traces/, another data dir), on stderr, on another
     * tenant's stdout, in another tenant's requests, in a header, or in
     * the body of a request to Opik. */
    held[p] = true;
    seen[p] = 0;
    free(tu_write_file(fx.data, "memchat.db", "xx" C_PASTED_KEY "yy"));
    free(tu_write_file(fx.data, "memchat.db-wal", "xx" C_PASTED_KEY "yy"));
    expect_no_leak(&r, T_PASTED);
    assert_true(stored_now[p]);
    assert_int_equal(seen[p], SEEN_FILE | SEEN_STDOUT);
    expect_one_leak(&r, "acme", p, "stdout");
    run_free(&r);
    r = fake_run("", "memchat: " C_PASTED_KEY);
    expect_one_leak(&r, T_PASTED, p, "stderr");
    run_free(&r);
    char traces[4096];
    snprintf(traces, sizeof traces, "%s/traces", fx.data);
    assert_int_equal(mkdir(traces, 0700), 0);
    free(tu_write_file(traces, "traces.jsonl", "{\"input\":\"" C_PASTED_KEY "\"}"));
    expect_one_leak(NULL, T_PASTED, p, "the traces/ files");
    remove_home_file(traces, "traces.jsonl");
    char other[4096];
    snprintf(other, sizeof other, "%s.pass", fx.data);
    assert_int_equal(mkdir(other, 0700), 0);
    free(tu_write_file(other, "memchat.db", "xx" C_PASTED_KEY "yy"));
    expect_one_leak(NULL, T_PASTED, p, "a file of HOME");
    remove_home_file(other, "memchat.db");

    mock_restart();
    raw_post("/v1/chat/completions", "Authorization: Bearer " C_GLOBAL_OPENAI,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"" C_PASTED_KEY "\"}]}");
    expect_no_leak(NULL, T_PASTED);
    assert_true(seen[p] & SEEN_BODY);
    raw_post("/v1/chat/completions", "Authorization: Bearer " C_GLOBAL_OPENAI,
             "{\"content\":\"" C_PASTED_KEY "\"}");
    expect_one_leak(NULL, "acme", p, "body of a request to /v1/chat/completions");
    raw_post("/v1/chat/completions", "X-Note: " C_PASTED_KEY, "{}");
    expect_one_leak(NULL, T_PASTED, p, "x-note header");
    raw_post("/api/v1/private/traces/batch", "Authorization: " C_OPIK,
             "{\"traces\":[{\"input\":{\"text\":\"" C_PASTED_KEY "\"}}]}");
    expect_one_leak(NULL, T_PASTED, p, "body of a request to /api/v1/private/traces/batch");

    /* Purged: nowhere, the data file included. */
    remove_home_file(fx.data, "memchat.db-wal");
    held[p] = false;
    expect_one_leak(NULL, T_PASTED, p, "memchat.db");
    assert_false(stored_now[p]);
}

/* Every step of the table runs with its expected exit code and reaches its
 * path (its text in the output); after each, no canary is anywhere it may
 * not be. A pasted credential may be in the data file from the step that
 * pastes it until its tenant's purge, which must find it there and leave
 * it nowhere. In the end every file row that must exist does (the scan
 * read them), every key meant for a server reached it in its own auth
 * header, and every pasted credential was stored, sent to a model and
 * shown to its user: each place it may be was checked with it there; the
 * traces and Opik held them redacted: each place it may not be, too. */
static void no_canary_leaks_from_any_verb_error_path_or_log(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_STEPS; i++) {
        const struct step *s = &steps[i];
        const char *tenant = step_tenant(s);
        for (size_t c = 0; c < N_CANARIES; c++) {
            if (step_pastes(s, c))
                held[c] = true;
            if (step_purges_tenant(s) && held[c] && canary_of_tenant(c, tenant) && !stored_now[c])
                fail_msg("step '%s': %s is not in memchat.db or its WAL before the purge, so "
                         "the purge proves nothing",
                         s->name, canaries[c].name);
        }
        if (s->before != NULL)
            s->before();
        const char *env[N_BASE_ENV + 8];
        char bufs[N_BASE_ENV + 8][512];
        step_env(s, env, bufs);
        struct run r;
        run_memchat(&r, s->in, env, s->args);
        if (s->after != NULL)
            s->after();
        /* Failures are written out before the run is freed, so a failing
         * step reports no leak of the test's own under LeakSanitizer. */
        static char why[16384];
        why[0] = '\0';
        if (s->exit_code >= 0 && r.status != s->exit_code)
            snprintf(why, sizeof why, "step '%s': exit %d, want %d\nstdout: %s\nstderr: %s",
                     s->name, r.status, s->exit_code, r.out, r.err);
        else if (s->output != NULL && strstr(r.out, s->output) == NULL &&
                 strstr(r.err, s->output) == NULL)
            snprintf(why, sizeof why, "step '%s' did not say '%s'\nstdout: %s\nstderr: %s", s->name,
                     s->output, r.out, r.err);
        for (size_t c = 0; c < N_CANARIES && step_purges_tenant(s); c++)
            if (canary_of_tenant(c, tenant))
                held[c] = false;
        struct leaks l;
        if (why[0] == '\0' && scan_places(&r, tenant, &l))
            snprintf(why, sizeof why, "step '%s' leaked (%zu):%s", s->name, l.n, l.text);
        run_free(&r);
        if (why[0] != '\0')
            fail_msg("%s", why);
    }
    for (size_t i = 0; i < N_PLACES; i++) {
        if (!places[i].must_exist)
            continue;
        char *p = place_path(&places[i]), path[4096];
        bool there = access(p, F_OK) == 0;
        snprintf(path, sizeof path, "%s", p);
        free(p);
        if (!there)
            fail_msg("%s (%s) does not exist: the scan proved nothing there", places[i].name, path);
    }
    for (size_t c = 0; c < N_CANARIES; c++) {
        const struct canary *k = &canaries[c];
        if (k->must_send && !(seen[c] & SEEN_HEADER))
            fail_msg("%s never reached %s in its %s header", k->name, k->route, k->header);
        if (k->files[0] != NULL && !(seen[c] & SEEN_FILE))
            fail_msg("%s was never stored in %s's memchat.db or its WAL", k->name, k->tenant);
        if (k->body_routes[0] != NULL && !(seen[c] & SEEN_BODY))
            fail_msg("%s never reached a model in a request body", k->name);
        if (k->own_stdout && !(seen[c] & SEEN_STDOUT))
            fail_msg("%s was never shown on %s's stdout", k->name, k->tenant);
    }
    if (!redacted_in_traces || !redacted_in_opik)
        fail_msg("no %s credential in %s: the pasted ones never reached a trace", REDACTED,
                 !redacted_in_traces ? "traces/" : "a trace sent to Opik");
}

static int secrets_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_scanner_finds_every_planted_form_in_every_place,
                                        case_setup, case_teardown),
        cmocka_unit_test_setup_teardown(no_canary_leaks_from_any_verb_error_path_or_log, case_setup,
                                        case_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    return harness_without_terminal(secrets_tests);
}
