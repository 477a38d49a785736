declare module 'lodash';
