declare module 'lodash';
declare module 'react-router-dom';
