import '@testing-library/jest-dom';
import { TextDecoder, TextEncoder } from 'util';

Object.assign(global, { TextDecoder, TextEncoder });

// jsdom lacks these browser APIs that @grafana/ui touches while rendering.
Object.defineProperty(global, 'matchMedia', {
  writable: true,
  value: (query) => ({
    matches: false,
    media: query,
    onchange: null,
    addListener: jest.fn(),
    removeListener: jest.fn(),
    addEventListener: jest.fn(),
    removeEventListener: jest.fn(),
    dispatchEvent: jest.fn(),
  }),
});
HTMLCanvasElement.prototype.getContext = () => {};
global.ResizeObserver = class {
  observe() {}
  unobserve() {}
  disconnect() {}
};
