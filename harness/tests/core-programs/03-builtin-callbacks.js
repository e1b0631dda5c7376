'use strict';
const crash = require('./oracle');
function viaReplace() {
  return 'abc'.replace(/b/, function replacer() { crash(); return 'x'; });
}
function viaReviver() {
  return JSON.parse('{"a":[1,2]}', function reviver(key, value) {
    if (key === 'a') viaReplace();
    return value;
  });
}
function viaSort() {
  let done = false;
  return [3, 1, 2].sort((a, b) => {
    if (!done) { done = true; viaReviver(); }
    return a - b;
  });
}
[1].map(function mapper(x) { return viaSort(x); });
[1].forEach(() => {});
