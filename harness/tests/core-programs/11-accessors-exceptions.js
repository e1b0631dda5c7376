'use strict';
const crash = require('./oracle');
const obj = {};
Object.defineProperty(obj, 'value', {
  get: function valueGetter() { return afterCatch(); },
});
function thrower() { throw new TypeError('expected'); }
function afterCatch() {
  try {
    thrower();
  } catch (e) {
    try {
      throw e;
    } catch (again) {
      return crash();
    }
  }
}
setTimeout(function onTimer() {
  process.nextTick(function onTick() {
    return obj.value;
  });
}, 1);
