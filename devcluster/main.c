/*
 * main.c: `devcluster up | down | serve`.
 *
 *   devcluster serve [--data_dir DIR] [...]  run in the foreground: the API
 *       server, then every component of components.c; SIGTERM or SIGINT
 *       stops them in reverse order.
 *   devcluster up [...]    start `serve` in the background (its log in
 *       DIR/devcluster.log, its pid in DIR/devcluster.pid), wait until it
 *       answers, print the kubeconfig path. If it already runs, just print.
 *   devcluster down        SIGTERM the pid in DIR/devcluster.pid and wait.
 *
 * DIR defaults to $DEVCLUSTER_DIR, else $HOME/.devcluster. A second `up`
 * on the same DIR finds the same objects, certificates and token.
 */
#include "apiserver.h"
#include "components.h"
#include "config.h"
#include "fileio.h"
#include "log.h"
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct dc_config {
    char *data_dir;
    char *address;
    int64_t port;
    int64_t watch_window;
    int64_t bookmark_interval_ms;
    int64_t gc_interval_ms;
    uint64_t max_body;
    lb_config_list sans;
    char *components; /* "all", "none", or names */
    char *log_level;
} dc_config;

static const lb_config_setting settings[] = {
    LB_SETTING("data_dir", LB_CONFIG_STRING, dc_config, data_dir, NULL,
               "state directory (default $DEVCLUSTER_DIR, else $HOME/.devcluster)"),
    LB_SETTING("address", LB_CONFIG_STRING, dc_config, address, "127.0.0.1",
               "address the API server listens on"),
    LB_SETTING_RANGE("port", LB_CONFIG_INT, dc_config, port, "0",
                     "API server port (0: a free one, or the last one used)", 0, 65535),
    LB_SETTING_RANGE("watch_window", LB_CONFIG_INT, dc_config, watch_window, "10000",
                     "changes kept for watch resume; older resourceVersions get 410", 1, 10000000),
    LB_SETTING_RANGE("bookmark_interval", LB_CONFIG_DURATION, dc_config, bookmark_interval_ms,
                     "60s", "how often a watch that allows bookmarks gets one", 10, 86400000),
    LB_SETTING_RANGE("gc_interval", LB_CONFIG_DURATION, dc_config, gc_interval_ms, "1s",
                     "how often the garbage collector rescans without changes", 10, 3600000),
    LB_SETTING_RANGE("max_body", LB_CONFIG_SIZE, dc_config, max_body, "3MiB",
                     "largest request body; larger ones get 413", 1024, 1 << 30),
    LB_SETTING("san", LB_CONFIG_LIST, dc_config, sans, "",
               "extra names or addresses for the serving certificate"),
    LB_SETTING("components", LB_CONFIG_STRING, dc_config, components, "all",
               "components to run besides the API server: all, none, or a comma list"),
    LB_SETTING("log_level", LB_CONFIG_STRING, dc_config, log_level, "info",
               "error, warn, info or debug"),
    LB_CONFIG_END,
};

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void
default_dir(dc_config *c)
{
    if (c->data_dir)
        return;
    const char *env = getenv("DEVCLUSTER_DIR");
    char buf[4096];
    if (env && *env)
        snprintf(buf, sizeof buf, "%s", env);
    else
        snprintf(buf, sizeof buf, "%s/.devcluster", getenv("HOME") ? getenv("HOME") : "/tmp");
    c->data_dir = strdup(buf);
}

static int
last_port(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/port", dir);
    lb_buf b = LB_BUF_INIT;
    int port = 0;
    if (lb_read_file(path, &b) == 0 && b.data)
        port = atoi(b.data);
    lb_buf_free(&b);
    return port;
}

static bool
wanted(const dc_config *c, const char *name)
{
    if (strcmp(c->components, "all") == 0)
        return true;
    if (strcmp(c->components, "none") == 0)
        return false;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", c->components);
    char *save = NULL;
    for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save))
        if (strcmp(s, name) == 0)
            return true;
    return false;
}

static int
serve(dc_config *c)
{
    lb_log_level level = LB_LOG_INFO;
    lb_log_level_parse(c->log_level, &level);
    lb_log_init("devcluster", level);
    lb_mkdir_p(c->data_dir, 0700);
    const char *sans[33] = {0};
    size_t nsans = 0;
    for (size_t i = 0; i < c->sans.count && i < 31; i++)
        sans[nsans++] = c->sans.items[i];
    /* pods reach the API server at the host's bridge address (node.h) */
    sans[nsans] = DC_NODE_POD_API_HOST;
    int port = (int)c->port;
    if (port == 0)
        port = last_port(c->data_dir); /* keep the kubeconfig valid across restarts */
    dc_apiserver_config ac = {
        .data_dir = c->data_dir,
        .address = c->address,
        .port = port,
        .sans = sans,
        .watch_window = (unsigned)c->watch_window,
        .bookmark_interval_ms = (int)c->bookmark_interval_ms,
        .gc_interval_ms = (int)c->gc_interval_ms,
        .max_body = (size_t)c->max_body,
    };
    dc_apiserver *api = NULL;
    int rc = dc_apiserver_start(&ac, &api);
    if (rc < 0 && port != 0 && c->port == 0) {
        ac.port = 0; /* the last port is taken: any free one */
        rc = dc_apiserver_start(&ac, &api);
    }
    if (rc < 0) {
        fprintf(stderr, "devcluster: could not start the API server: %s\n", strerror(-rc));
        return 1;
    }
    char ca_file[4096];
    snprintf(ca_file, sizeof ca_file, "%s/ca.crt", c->data_dir);
    dc_component_env env = {
        .data_dir = c->data_dir,
        .api_url = dc_apiserver_url(api),
        .api_host = c->address,
        .api_port = dc_apiserver_port(api),
        .token = dc_apiserver_token(api),
        .ca_pem = dc_apiserver_ca_pem(api),
        .ca_file = ca_file,
        .kubeconfig = dc_apiserver_kubeconfig_path(api),
        .api = api,
    };
    size_t n = 0;
    while (dc_components[n])
        n++;
    void **states = calloc(n + 1, sizeof *states);
    bool *started = calloc(n + 1, sizeof *started);
    int exit_code = 0;
    for (size_t i = 0; i < n; i++) {
        if (!wanted(c, dc_components[i]->name))
            continue;
        rc = dc_components[i]->start(&env, &states[i]);
        if (rc < 0) {
            lb_error("component failed to start component=%s: %s", dc_components[i]->name,
                     strerror(-rc));
            exit_code = 1;
            stop_requested = 1;
            break;
        }
        started[i] = true;
        lb_info("component started component=%s", dc_components[i]->name);
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!stop_requested) {
        lb_info("devcluster ready kubeconfig=%s", dc_apiserver_kubeconfig_path(api));
        printf("%s\n", dc_apiserver_kubeconfig_path(api));
        fflush(stdout);
    }
    while (!stop_requested)
        pause();
    lb_info("stopping");
    for (size_t i = n; i-- > 0;)
        if (started[i] && dc_components[i]->stop)
            dc_components[i]->stop(states[i]);
    free(states);
    free(started);
    dc_apiserver_stop(api);
    lb_info("stopped");
    return exit_code;
}

static pid_t
running_pid(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/devcluster.pid", dir);
    lb_buf b = LB_BUF_INIT;
    pid_t pid = 0;
    if (lb_read_file(path, &b) == 0 && b.data)
        pid = (pid_t)atoi(b.data);
    lb_buf_free(&b);
    if (pid > 0 && kill(pid, 0) == 0)
        return pid;
    return 0;
}

static int
up(dc_config *c, char *self)
{
    lb_mkdir_p(c->data_dir, 0700);
    char kubeconfig[4096];
    snprintf(kubeconfig, sizeof kubeconfig, "%s/kubeconfig", c->data_dir);
    if (running_pid(c->data_dir)) {
        printf("%s\n", kubeconfig);
        return 0;
    }
    char log[4096], pidfile[4096], port[32], window[32], bm[32], gci[32], body[32];
    snprintf(log, sizeof log, "%s/devcluster.log", c->data_dir);
    snprintf(pidfile, sizeof pidfile, "%s/devcluster.pid", c->data_dir);
    snprintf(port, sizeof port, "%lld", (long long)c->port);
    snprintf(window, sizeof window, "%lld", (long long)c->watch_window);
    snprintf(bm, sizeof bm, "%lldms", (long long)c->bookmark_interval_ms);
    snprintf(gci, sizeof gci, "%lldms", (long long)c->gc_interval_ms);
    snprintf(body, sizeof body, "%llu", (unsigned long long)c->max_body);
    /* only what this start logs counts: the log keeps earlier starts */
    struct stat st;
    off_t log_start = stat(log, &st) == 0 ? st.st_size : 0;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        setsid();
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (devnull >= 0)
            dup2(devnull, 0);
        lb_buf sans = LB_BUF_INIT;
        for (size_t i = 0; i < c->sans.count; i++)
            lb_buf_printf(&sans, "%s%s", i ? "," : "", c->sans.items[i]);
        char *argv[] = {self,
                        "serve",
                        "--data_dir",
                        c->data_dir,
                        "--address",
                        c->address,
                        "--port",
                        port,
                        "--watch_window",
                        window,
                        "--bookmark_interval",
                        bm,
                        "--gc_interval",
                        gci,
                        "--max_body",
                        body,
                        "--components",
                        c->components,
                        "--log_level",
                        c->log_level,
                        "--san",
                        sans.data ? sans.data : "",
                        NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "%d\n", (int)pid);
    lb_write_file_atomic(pidfile, pidtext, strlen(pidtext));
    /* ready when this start's part of the log says so (after every component started) */
    for (int i = 0; i < 600; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "devcluster: serve exited early; see %s\n", log);
            return 1;
        }
        lb_buf b = LB_BUF_INIT;
        bool ready = lb_read_file(log, &b) == 0 && b.data && (size_t)log_start <= b.len &&
                     strstr(b.data + log_start, "devcluster ready") &&
                     running_pid(c->data_dir) == pid;
        lb_buf_free(&b);
        if (ready) {
            printf("%s\n", kubeconfig);
            return 0;
        }
        usleep(100000);
    }
    fprintf(stderr, "devcluster: not ready after 60s; see %s\n", log);
    return 1;
}

static int
down(dc_config *c)
{
    pid_t pid = running_pid(c->data_dir);
    if (!pid) {
        fprintf(stderr, "devcluster: not running (data dir \"%s\")\n", c->data_dir);
        /* a killed devcluster leaves its containers: stop them by id */
        int n = dc_node_down(c->data_dir);
        if (n > 0)
            fprintf(stderr, "devcluster: removed %d containers of a devcluster that was killed\n",
                    n);
        return 0;
    }
    kill(pid, SIGTERM);
    for (int i = 0; i < 600 && kill(pid, 0) == 0; i++)
        usleep(100000);
    if (kill(pid, 0) == 0) {
        fprintf(stderr, "devcluster: pid %d did not stop in 60s; sending SIGKILL\n", (int)pid);
        kill(pid, SIGKILL);
    }
    char pidfile[4096];
    snprintf(pidfile, sizeof pidfile, "%s/devcluster.pid", c->data_dir);
    unlink(pidfile);
    dc_node_down(c->data_dir); /* none left unless it had to be killed */
    return 0;
}

int
main(int argc, char **argv)
{
    dc_config c;
    memset(&c, 0, sizeof c);
    lb_config_result res;
    int rc = lb_config_load(settings, &c, NULL, argc, argv, &res);
    if (res.help || rc != 0 || res.npositional != 1) {
        if (rc != 0)
            fprintf(stderr, "devcluster: %s\n", res.error);
        lb_buf help = LB_BUF_INIT;
        lb_config_help(settings, "devcluster", "up | down | serve", &help);
        fputs(help.data ? help.data : "", stderr);
        lb_buf_free(&help);
        lb_config_result_free(&res);
        lb_config_free(settings, &c);
        return res.help ? 0 : 2;
    }
    default_dir(&c);
    const char *cmd = res.positional[0];
    int exit_code;
    if (strcmp(cmd, "serve") == 0)
        exit_code = serve(&c);
    else if (strcmp(cmd, "up") == 0)
        exit_code = up(&c, argv[0]);
    else if (strcmp(cmd, "down") == 0)
        exit_code = down(&c);
    else {
        fprintf(stderr, "devcluster: unknown command \"%s\" (up, down or serve)\n", cmd);
        exit_code = 2;
    }
    lb_config_result_free(&res);
    lb_config_free(settings, &c);
    return exit_code;
}
