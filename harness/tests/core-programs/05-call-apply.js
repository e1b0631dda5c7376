'use strict';
const crash = require('./oracle');
function target(a) { return crash(a); }
const bound = target.bind(null, 1);
const handler = {
  get(obj, prop) { return prop === 'go' ? viaApply : obj[prop]; },
};
const proxy = new Proxy({}, handler);
function viaApply() { return Reflect.apply(viaCall, null, []); }
function viaCall() { return viaFnApply.call(null); }
function viaFnApply() { return bound.apply(null, []); }
proxy.go();
