'use strict';
const crash = require('./oracle');
class Shape {
  constructor(sides) {
    this.sides = sides;
    this.area = this.measure();
  }
  measure() {
    return this.perimeter * 2;
  }
  get perimeter() {
    return describe(this);
  }
}
class Square extends Shape {
  constructor() {
    super(4);
  }
}
function describe(shape) {
  if (shape.sides === 4) crash();
  return 0;
}
new Square();
