// Errors as Node's fs raises them: an Error with code ('ELOOP'), errno and syscall, so callers
// match on err.code exactly as they do for fs.
#ifndef SG_ERRORS_H
#define SG_ERRORS_H
#include <node_api.h>
#include <uv.h>
#include <stdio.h>
#include <string.h>

static inline napi_value sg_errno_error(napi_env env, int err, const char* syscall, const char* name) {
  char msg[1200];
  const char* code = uv_err_name(-err);
  snprintf(msg, sizeof msg, "%s, %s '%s'", code, syscall, name ? name : "");
  napi_value error, message, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, error, "code", v);
  napi_create_int32(env, -err, &v);
  napi_set_named_property(env, error, "errno", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, error, "syscall", v);
  return error;
}

static inline napi_value sg_throw_errno(napi_env env, int err, const char* syscall, const char* name) {
  napi_throw(env, sg_errno_error(env, err, syscall, name));
  return NULL;
}

/** A JS string into buf; -1 when it does not fit (never silently truncated). */
static inline int sg_get_string(napi_env env, napi_value v, char* buf, size_t len) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, buf, len, &n) != napi_ok) return -1;
  if (n >= len - 1) return -1;
  return 0;
}

/** One directory entry name: no '/', not '', '.' or '..' (so nothing can walk out of its directory). */
static inline int sg_is_component(const char* name) {
  return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}
#endif
