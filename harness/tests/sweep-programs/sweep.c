/* A leaf-ish N-API function for `crosswind sweep`, built with
   -O2 -fomit-frame-pointer: no frame record, so every instruction must be
   unwound from CFI alone. It calls its second argument when that is a
   function (the test passes oracle.js's record() once). */
#include <node_api.h>

static napi_value Work(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t n = 0;
  napi_get_value_int32(env, argv[0], &n);
  napi_valuetype type = napi_undefined;
  if (argc > 1) napi_typeof(env, argv[1], &type);
  if (type == napi_function) napi_call_function(env, argv[1], argv[1], 0, NULL, &result);
  double acc = 0;
  for (int i = 0; i < n; i++) acc += i * 0.5;
  napi_create_double(env, acc, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "work", NAPI_AUTO_LENGTH, Work, NULL, &fn);
  napi_set_named_property(env, exports, "work", fn);
  return exports;
}
