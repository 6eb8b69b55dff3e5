import { brokerDown } from './broker.mjs'

brokerDown()
